"""Signed, opaque tokens for links in messages (unsubscribe, preferences).

A token carries a delivery id signed with SECRET_KEY (itsdangerous, HMAC-SHA1 by default). It cannot be
guessed or walked (changing one character breaks the signature) and it does not expire: CAN-SPAM asks
for at least 30 days and a reader may open an old email years later.
"""

from __future__ import annotations

from itsdangerous import BadData, URLSafeSerializer, URLSafeTimedSerializer


class BadToken(Exception):
    """The token was forged, truncated or altered."""


class LinkSigner:
    def __init__(self, secret_key: str) -> None:
        self._unsubscribe = URLSafeSerializer(secret_key, salt="nurture.unsubscribe")
        self._confirm = URLSafeTimedSerializer(secret_key, salt="nurture.confirm")

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

    def confirm_token(self, contact_id: int) -> str:
        """The double opt-in link's token: a contact id, signed and timestamped."""
        return self._confirm.dumps(contact_id)

    def confirmed_contact(self, token: str, max_age_seconds: int) -> int:
        """The contact id of a confirmation link no older than `max_age_seconds`. Raises BadToken."""
        try:
            value = self._confirm.loads(token, max_age=max_age_seconds)
        except BadData as exc:
            raise BadToken("invalid, altered or expired confirmation link") from exc
        if not isinstance(value, int):
            raise BadToken("invalid link")
        return value
