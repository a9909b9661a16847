"""Email providers' webhooks: the SES_*, SNS_*, POSTMARK_*, SENDGRID_* and MAILGUN_* variables.

Each endpoint is off (404) until its secret is set. Secrets are checked here, at start-up: a SendGrid key
that is not an ECDSA P-256 public key stops the service with the variable's name, not the first webhook.
"""

from __future__ import annotations

import base64
import binascii
import re
from ipaddress import ip_address
from typing import Annotated

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

# Where SNS keeps its signing certificates: https://sns.<region>.amazonaws.com/SimpleNotificationService-….pem
# (and .amazonaws.com.cn in China). A message naming any other host is refused before anything is fetched.
SNS_HOSTS = ("sns.*.amazonaws.com", "sns.*.amazonaws.com.cn")
LOOPBACK_NAMES = ("localhost",)
AWS_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}")


def _words(value: object) -> object:
    """A comma- or space-separated list in one variable."""
    if isinstance(value, str):
        return tuple(word for word in value.replace(",", " ").split() if word)
    return value


Words = Annotated[tuple[str, ...], BeforeValidator(_words)]


def host_matches(host: str, pattern: str) -> bool:
    """`*` stands for one AWS region name (us-east-1, cn-north-1), nothing else. Not fnmatch: its `*`
    crosses dots, and an S3 bucket named `sns.x` is served as sns.x.s3.amazonaws.com; nor any one label:
    a bucket named `sns` is sns.s3.amazonaws.com — anyone's certificate on an amazonaws.com host."""
    labels, wanted = host.lower().split("."), pattern.lower().split(".")
    return len(labels) == len(wanted) and all(
        want == label or (want == "*" and AWS_REGION.fullmatch(label) is not None)
        for label, want in zip(labels, wanted, strict=True))


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def sendgrid_key(text: str) -> ec.EllipticCurvePublicKey:
    """SendGrid shows the verification key as base64 DER (SubjectPublicKeyInfo); a PEM block works too."""
    raw = text.strip()
    try:
        key = (load_pem_public_key(raw.encode()) if raw.startswith("-----BEGIN")
               else load_der_public_key(base64.b64decode(raw, validate=True)))
    except (ValueError, binascii.Error, UnsupportedAlgorithm) as exc:
        raise ValueError("expected the Event Webhook's verification key (base64 DER or PEM)") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("expected an ECDSA P-256 public key (SendGrid's Event Webhook verification key)")
    return key


class ProviderSettings(BaseModel):
    """Built from the whole environment mapping; each field reads the variable it is aliased to."""

    model_config = ConfigDict(frozen=True, extra="ignore", validate_by_name=True, validate_by_alias=True,
                              arbitrary_types_allowed=True)

    # SES through SNS: the topics we subscribed. Anyone with an AWS account can make a topic whose messages
    # SNS signs, so a valid signature alone proves nothing: the topic must be one of ours.
    ses_topic_arns: Words = Field((), alias="SES_SNS_TOPIC_ARNS")
    # Host patterns a SigningCertURL or SubscribeURL may name (https only). A loopback host listed here
    # may be plain http: that is for tests, which serve their own certificate; nothing outside the machine
    # can answer on a loopback address.
    sns_hosts: Words = Field(SNS_HOSTS, alias="SNS_CERT_HOSTS")
    postmark_user: str | None = Field(None, alias="POSTMARK_WEBHOOK_USER")
    postmark_password: str | None = Field(None, min_length=16, alias="POSTMARK_WEBHOOK_PASSWORD")
    sendgrid_public_key: str | None = Field(None, alias="SENDGRID_WEBHOOK_PUBLIC_KEY")
    mailgun_signing_key: str | None = Field(None, min_length=16, alias="MAILGUN_WEBHOOK_SIGNING_KEY")
    # SendGrid and Mailgun sign a timestamp: older (or further ahead) than this, a request is a replay.
    max_age_seconds: int = Field(300, ge=30, le=86_400, alias="WEBHOOK_MAX_AGE_SECONDS")

    @field_validator("ses_topic_arns")
    @classmethod
    def _arns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for arn in value:
            if not arn.startswith("arn:aws") or arn.count(":") != 5:
                raise ValueError(f"expected topic ARNs like arn:aws:sns:us-east-1:123456789012:ses-events, "
                                 f"got {arn!r}")
        return value

    @field_validator("sendgrid_public_key")
    @classmethod
    def _sendgrid(cls, value: str | None) -> str | None:
        if value:
            sendgrid_key(value)
        return value or None

    @property
    def postmark_on(self) -> bool:
        return bool(self.postmark_user and self.postmark_password)

    def sns_url_allowed(self, scheme: str, host: str) -> bool:
        """Whether SNS's certificate or subscription URL may be fetched: https to an allowed host, or
        http to an allowed host that is this machine (see SNS_CERT_HOSTS)."""
        host = host.lower()
        listed = any(host_matches(host, pattern) for pattern in self.sns_hosts)
        return listed and (scheme == "https" or (scheme == "http" and is_loopback(host)))
