"""Amazon SNS: is this message really from SNS, about a topic of ours? And confirming a subscription.

SNS signs each message with RSA (SignatureVersion 1: SHA1, 2: SHA256) over a fixed list of its fields;
the certificate is fetched from the message's SigningCertURL, which must be https on an SNS host
(SNS_CERT_HOSTS: by default sns.<region>.amazonaws.com), and is kept per URL (AWS rotates it rarely).
Nothing is fetched for a message whose topic is not ours, or whose URL names another host.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from urllib.error import URLError
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from nurture.config import ProviderSettings

log = logging.getLogger(__name__)

# The fields each message type signs, in this order (AWS: "Verifying the signatures of Amazon SNS messages").
SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
OPTIONAL = ("Subject",)  # a Notification signs its Subject only when it has one
HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}
FETCH_TIMEOUT = 5.0
MAX_CERT_BYTES = 16_384
_certs: dict[str, x509.Certificate] = {}
_certs_lock = threading.Lock()


class NotFromSns(Exception):
    """The message does not prove it comes from SNS for one of our topics: 403, nothing changes."""


@dataclass(frozen=True)
class SnsMessage:
    type: str
    message_id: str
    topic_arn: str
    message: str
    subscribe_url: str | None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect could lead to any host: the allowed host must be the one that answers.
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def _fields(body: object) -> dict[str, str]:
    if not isinstance(body, dict) or not all(isinstance(v, str) for v in body.values()):
        raise NotFromSns("not an SNS message (a JSON object of strings)")
    return body


def string_to_sign(body: dict[str, str]) -> bytes:
    names = SIGNED_FIELDS.get(body.get("Type", ""))
    if names is None:
        raise NotFromSns(f"unknown SNS message type {body.get('Type')!r}")
    missing = [name for name in names if name not in body and name not in OPTIONAL]
    if missing:
        raise NotFromSns(f"SNS message without {', '.join(missing)}")
    return "".join(f"{name}\n{body[name]}\n" for name in names if name in body).encode()


def fetch(settings: ProviderSettings, url: str, limit: int) -> bytes:
    """GET an SNS URL (certificate, subscription) if its host is allowed. Raises NotFromSns."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError as exc:  # "http://[" and the like
        raise NotFromSns(f"{url[:200]!r} is not a URL") from exc
    if not settings.sns_url_allowed(parts.scheme, host):
        raise NotFromSns(f"{url[:200]!r} is not an allowed SNS URL (SNS_CERT_HOSTS)")
    try:
        with _opener.open(url, timeout=FETCH_TIMEOUT) as response:
            return response.read(limit + 1)[:limit]
    except (URLError, OSError, ValueError) as exc:
        raise NotFromSns(f"could not fetch {url[:200]}: {exc}") from exc


def certificate(settings: ProviderSettings, url: str) -> x509.Certificate:
    with _certs_lock:
        cached = _certs.get(url)
    if cached is not None:
        return cached
    try:
        cert = x509.load_pem_x509_certificate(fetch(settings, url, MAX_CERT_BYTES))
    except ValueError as exc:
        raise NotFromSns(f"{url[:200]} is not a PEM certificate") from exc
    with _certs_lock:
        if len(_certs) >= 64:  # a handful of regions at most; bounded all the same
            _certs.clear()
        _certs[url] = cert
    return cert


def verify(settings: ProviderSettings, body: object, now: datetime) -> SnsMessage:
    """The message, once it has proved it is SNS's, for one of our topics. Raises NotFromSns."""
    fields = _fields(body)
    if fields.get("TopicArn") not in settings.ses_topic_arns:
        raise NotFromSns(f"topic {fields.get('TopicArn', '')[:200]!r} is not in SES_SNS_TOPIC_ARNS")
    digest = HASHES.get(fields.get("SignatureVersion", ""))
    if digest is None:
        raise NotFromSns(f"unknown SignatureVersion {fields.get('SignatureVersion')!r}")
    data = string_to_sign(fields)
    try:
        signature = base64.b64decode(fields.get("Signature", ""), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NotFromSns("Signature is not base64") from exc
    cert = certificate(settings, fields.get("SigningCertURL", ""))
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise NotFromSns("the signing certificate is not valid now")
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise NotFromSns("the signing certificate has no RSA key")
    try:
        key.verify(signature, data, padding.PKCS1v15(), digest())
    except InvalidSignature as exc:
        raise NotFromSns("the signature does not verify") from exc
    return SnsMessage(fields["Type"], fields["MessageId"], fields["TopicArn"], fields["Message"],
                      fields.get("SubscribeURL"))


def confirm(settings: ProviderSettings, message: SnsMessage) -> None:
    """Confirm a subscription to one of our topics: GET its SubscribeURL (the same host rule)."""
    fetch(settings, message.subscribe_url or "", 65_536)
    log.info("confirmed the SNS subscription to %s", message.topic_arn)
