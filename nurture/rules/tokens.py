"""Signed, opaque tokens for links in messages (unsubscribe, preferences).

A token carries a delivery id signed with SECRET_KEY (itsdangerous, HMAC-SHA1 by default). It cannot be
guessed or walked (changing one character breaks the signature) and it does not expire: CAN-SPAM asks
for at least 30 days and a reader may open an old email years later.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from itsdangerous import BadData, URLSafeSerializer, URLSafeTimedSerializer
from itsdangerous.signer import HMACAlgorithm


class BadToken(Exception):
    """The token was forged, truncated or altered."""


class _Dumps:
    """`serializer.dumps`, the same tokens, made without itsdangerous's layers: its compact JSON, zlib when
    that is shorter, URL-safe base64, and HMAC-SHA1 over that with the key derived once (a copy of the
    keyed HMAC per token). itsdangerous made a new Signer and derived its key on every call, and its
    layers cost as much again; every email carries two tokens or more (unsubscribe, each tracked link).
    tests/test_token_signing.py holds them byte-equal to `serializer.dumps`."""

    def __init__(self, serializer: URLSafeSerializer) -> None:
        signer = serializer.make_signer()
        assert isinstance(signer.algorithm, HMACAlgorithm) and signer.sep == b"."  # what is copied below
        self._mac = hmac.new(signer.derive_key(), digestmod=signer.algorithm.digest_method)

    def __call__(self, obj: Any) -> str:
        # An int is its decimal digits in JSON; json.dumps with arguments builds a new encoder every call.
        data = (str(obj) if type(obj) is int else _JSON(obj)).encode("utf-8")  # as itsdangerous
        # zlib's smallest output for any input is 8 bytes (9 for a non-empty one), so compression cannot
        # win below 11 bytes: a delivery id's token is not compressed at all (~2 µs, deflate's set-up).
        compressed = zlib.compress(data) if len(data) > _NEVER_SHORTER else data
        payload = (b"." + _b64(compressed)) if len(compressed) < len(data) - 1 else _b64(data)
        mac = self._mac.copy()
        mac.update(payload)
        return (payload + b"." + _b64(mac.digest())).decode("ascii")


class _Loads:
    """`serializer.loads` for the tokens _Dumps makes (and itsdangerous made before it), without its layers,
    the key derived once: on every sign-up the form's start-time token is checked, and itsdangerous's
    Signer made anew, its key derived and its layers were ~4% of a sign-up's CPU (bench/README.md, P4).
    Raises BadToken for anything not signed by this key. tests/test_token_signing.py holds it to
    `serializer.loads` for good and tampered tokens."""

    def __init__(self, serializer: URLSafeSerializer) -> None:
        signer = serializer.make_signer()
        assert isinstance(signer.algorithm, HMACAlgorithm) and signer.sep == b"."  # what is copied below
        self._mac = hmac.new(signer.derive_key(), digestmod=signer.algorithm.digest_method)

    def __call__(self, token: str) -> Any:
        try:
            payload, dot, signature = token.encode("utf-8").rpartition(b".")
            if not dot:
                raise BadToken("not signed")
            mac = self._mac.copy()
            mac.update(payload)
            if not hmac.compare_digest(_unb64(signature), mac.digest()):
                raise BadToken("invalid, altered or expired link")
            # Signed by us from here on: the payload is what _Dumps (or itsdangerous) wrote.
            compressed = payload.startswith(b".")
            data = _unb64(payload[1:] if compressed else payload)
            return json.loads(zlib.decompress(data) if compressed else data)
        except (ValueError, zlib.error) as exc:  # bad base64, a lone surrogate (UnicodeError), bad JSON
            raise BadToken("invalid, altered or expired link") from exc


def _unb64(data: bytes) -> bytes:
    return base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))


# itsdangerous's JSON: compact, non-ASCII kept. One encoder, made once (its output depends only on these).
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_NEVER_SHORTER = 10  # data this long or shorter is never compressed below len(data) - 1 (see above)


def _keyed(key: bytes) -> Callable[[bytes], bytes]:
    """HMAC-SHA256 under `key`: the key's inner and outer blocks hashed once, copied for each message
    (hmac.new derives them anew on every call; three of these a message)."""
    template = hmac.new(key, digestmod=hashlib.sha256)

    def mac(message: bytes) -> bytes:
        copy = template.copy()
        copy.update(message)
        return copy.digest()

    return mac


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


class LinkSigner:
    def __init__(self, secret_key: str) -> None:
        self._unsubscribe = URLSafeSerializer(secret_key, salt="nurture.unsubscribe")
        self._click = URLSafeSerializer(secret_key, salt="nurture.click")
        self._dump_unsubscribe, self._dump_click = _Dumps(self._unsubscribe), _Dumps(self._click)
        self._feedback = URLSafeSerializer(secret_key, salt="nurture.feedback")
        self._referral_key = hashlib.sha256(f"nurture.referral:{secret_key}".encode()).digest()
        self._referral_hmac = _keyed(self._referral_key)
        self._confirm = URLSafeTimedSerializer(secret_key, salt="nurture.confirm")
        self._form = URLSafeSerializer(secret_key, salt="nurture.form-started")
        self._load_form = _Loads(self._form)
        self._magnet = URLSafeSerializer(secret_key, salt="nurture.lead-magnet")
        self._message_key = secret_key.encode()
        self._message_hmac = _keyed(self._message_key)
        self._return_key = hashlib.sha256(f"nurture.return-path:{secret_key}".encode()).digest()
        self._return_hmac = _keyed(self._return_key)

    def unsubscribe_token(self, delivery_id: int) -> str:
        return self._dump_unsubscribe(delivery_id)

    def delivery_id(self, token: str) -> int:
        return _load(self._unsubscribe, token, lambda v: isinstance(v, int))

    def feedback_token(self, delivery_id: int) -> str:
        return self._feedback.dumps(delivery_id)

    def feedback_delivery(self, token: str) -> int:
        return _load(self._feedback, token, lambda v: isinstance(v, int))

    def referral_code(self, contact_id: int) -> str:
        """A contact's personal referral code: its id in base 36 and a 6-character MAC — short enough to
        read aloud, stable without storing it, and impossible to walk to other contacts' codes."""
        body = _base36(contact_id)
        return f"{body}{self._referral_mac(body)}"

    def referrer(self, code: str) -> int | None:
        code = code.strip().lower()
        if not code.isascii():  # no code of ours is; and compare_digest raises TypeError on non-ASCII text
            return None
        body, mac = code[:-6], code[-6:]
        if not body or not hmac.compare_digest(mac, self._referral_mac(body)):
            return None
        try:
            return int(body, 36)
        except ValueError:
            return None

    def _referral_mac(self, body: str) -> str:
        digest = self._referral_hmac(body.encode())
        return _base36(int.from_bytes(digest[:5], "big")).rjust(6, "0")[-6:]

    def click_token(self, delivery_id: int, url: str) -> str:
        """A tracked link: the delivery and the exact URL that was in the message, signed together, so the
        redirect can only ever lead where that message pointed (never an open redirect)."""
        return self._dump_click([delivery_id, url])

    def clicked(self, token: str) -> tuple[int, str]:
        value = _load(self._click, token, lambda v: isinstance(v, list) and len(v) == 2
                      and isinstance(v[0], int) and isinstance(v[1], str))
        return value[0], value[1]

    def confirm_token(self, contact_id: int) -> str:
        """The double opt-in link's token: a contact id, signed and timestamped."""
        return self._confirm.dumps(contact_id)

    def confirmed_contact(self, token: str, max_age_seconds: int) -> int:
        """The contact id of a confirmation link no older than `max_age_seconds`. Raises BadToken."""
        return _load(self._confirm, token, lambda v: isinstance(v, int), max_age=max_age_seconds)

    def form_token(self, form_id: str, issued: datetime) -> str:
        """The signed time a form was handed out (hidden in it), for the minimum fill time. The time is in
        the payload, not itsdangerous's own timestamp, so that it comes from the runtime's clock."""
        return self._form.dumps([form_id, int(issued.timestamp())])

    def form_issued(self, token: str, form_id: str) -> datetime:
        """When the form carrying `token` was handed out. Raises BadToken (also for another form's token)."""
        value = self._load_form(token)
        if not (isinstance(value, list) and len(value) == 2 and value[0] == form_id and isinstance(value[1], int)):
            raise BadToken("invalid link")
        return datetime.fromtimestamp(value[1], UTC)

    def lead_magnet_token(self, contact_id: int, form_id: str) -> str:
        """The download link's token for a lead magnet file: whoever has the welcome email can fetch it."""
        return self._magnet.dumps([contact_id, form_id])

    def lead_magnet_form(self, token: str) -> str:
        """The form id a lead magnet token was made for. Raises BadToken."""
        return _load(self._magnet, token, lambda v: isinstance(v, list) and len(v) == 2
                     and isinstance(v[1], str))[1]


    def message_tag(self, delivery_id: int) -> str:
        """The MAC in a delivery's Message-ID (`<nurture.ID.TAG@domain>`): a report quoting the original
        headers can be traced by it even when the return path was lost on the way."""
        return self._message_hmac(str(delivery_id).encode()).hex()[:10]

    def return_path(self, delivery_id: int, bounce_address: str) -> str:
        """The VERP envelope sender of one delivery: `bounces@x` becomes `bounces+ID.MAC@x`. Lower case
        only (some MTAs fold the local part's case), 8 base-36 characters of MAC (41 bits): a forger who
        can only send mail gets one guess per message."""
        local, _, domain = bounce_address.rpartition("@")
        body = _base36(delivery_id)
        return f"{local}+{body}.{self._return_mac(body)}@{domain}"

    def returned_delivery(self, address: str) -> int | None:
        """The delivery id a bounce's return path (or a quoted Message-ID) names, or None when it is not
        one of ours or its MAC does not verify (a forged bounce changes nothing)."""
        address = address.strip().strip("<>").lower()
        local = address.rpartition("@")[0]
        verp = re.fullmatch(r".*\+([0-9a-z]+)\.([0-9a-z]+)", local)
        if verp:
            body, mac = verp.groups()
            return int(body, 36) if hmac.compare_digest(mac, self._return_mac(body)) else None
        message_id = re.fullmatch(r"nurture\.([0-9]{1,18})\.([0-9a-f]+)", local)  # nurture.ID.TAG
        if message_id and hmac.compare_digest(message_id[2], self.message_tag(int(message_id[1]))):
            return int(message_id[1])
        return None

    def _return_mac(self, body: str) -> str:
        digest = self._return_hmac(body.encode())
        return _base36(int.from_bytes(digest[:6], "big")).rjust(8, "0")[-8:]


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if number == 0:
            return text


def _load(serializer: URLSafeSerializer, token: str, valid: Callable[[Any], bool], **kwargs: Any) -> Any:
    """The payload of a token signed by `serializer`, or BadToken: forged, altered, truncated, expired,
    or signed by us but not of the shape this link carries."""
    try:
        value = serializer.loads(token, **kwargs)
    except (BadData, UnicodeError) as exc:  # UnicodeError: a lone surrogate (a JSON post can carry one)
        raise BadToken("invalid, altered or expired link") from exc
    if not valid(value):
        raise BadToken("invalid link")
    return value
