"""Signed, opaque tokens for links in messages (unsubscribe, preferences).

A token carries a delivery id signed with SECRET_KEY (itsdangerous, HMAC-SHA1 by default). It cannot be
guessed or walked (changing one character breaks the signature) and it does not expire: CAN-SPAM asks
for at least 30 days and a reader may open an old email years later.
"""

from __future__ import annotations

from itsdangerous import BadData, URLSafeSerializer


class BadToken(Exception):
    """The token was forged, truncated or altered."""


class LinkSigner:
    def __init__(self, secret_key: str) -> None:
        self._unsubscribe = URLSafeSerializer(secret_key, salt="nurture.unsubscribe")

    def unsubscribe_token(self, delivery_id: int) -> str:
        return self._unsubscribe.dumps(delivery_id)

    def delivery_id(self, token: str) -> int:
        try:
            value = self._unsubscribe.loads(token)
        except BadData as exc:
            raise BadToken("invalid or altered link") from exc
        if not isinstance(value, int):
            raise BadToken("invalid link")
        return value
