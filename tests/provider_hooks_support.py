"""What the provider webhook tests share: the app behind a real HTTP server, a local server for SNS's
signing certificate and subscription URL, keys made here, and each provider's documented sample payloads
(from their docs, with our message's ids put in)."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from werkzeug.serving import make_server

from nurture.runtime import Runtime
from nurture.web import create_app

TOPIC = "arn:aws:sns:us-west-2:123456789012:ses-events"
POSTMARK_USER, POSTMARK_PASSWORD = "postmark", "webhook-password-0123456789"
MAILGUN_KEY = "key-mailgun-signing-0123456789abcdef"


@contextmanager
def serve_app(rt: Runtime) -> Iterator[str]:
    """The app on a real HTTP server (werkzeug, threaded), as a provider reaches it. Yields its base URL."""
    server = make_server("127.0.0.1", 0, create_app(rt), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


# --- SNS: a signing certificate of our own, served over HTTP on the loopback -------------------------------

def rsa_certificate(now: datetime) -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.us-west-2.amazonaws.com")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=30))
            .not_valid_after(now + timedelta(days=365)).sign(key, hashes.SHA256()))
    return key, cert.public_bytes(serialization.Encoding.PEM)


class SnsHost:
    """SNS's side: serves certificate files and records every GET (subscription confirmations)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                host.requests.append(self.path)
                body = host.files.get(self.path.partition("?")[0], b"<ConfirmSubscriptionResponse/>")
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def sns_string_to_sign(message: dict[str, str]) -> bytes:
    """Written from AWS's page "Verifying the signatures of Amazon SNS messages", not from nurture's code."""
    if message["Type"] == "Notification":
        names = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        names = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    return "".join(f"{n}\n{message[n]}\n" for n in names if n in message).encode()


def sns_signed(message: dict[str, str], key: rsa.RSAPrivateKey, cert_url: str, version: str = "1") -> dict:
    signed = {**message, "SignatureVersion": version, "SigningCertURL": cert_url}
    digest = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = key.sign(sns_string_to_sign(signed), padding.PKCS1v15(), digest)
    return {**signed, "Signature": base64.b64encode(signature).decode()}


def sns_notification(message_id: str, ses_message: dict, topic: str = TOPIC) -> dict[str, str]:
    return {"Type": "Notification", "MessageId": message_id, "TopicArn": topic,
            "Message": json.dumps(ses_message), "Timestamp": "2026-11-23T09:00:00.000Z",
            "UnsubscribeURL": "https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe"}


def sns_subscription(subscribe_url: str, topic: str = TOPIC) -> dict[str, str]:
    # AWS's sample SubscriptionConfirmation, with our topic and a local SubscribeURL.
    return {"Type": "SubscriptionConfirmation", "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
            "Token": "2336412f37f", "TopicArn": topic,
            "Message": f"You have chosen to subscribe to the topic {topic}.\nTo confirm the subscription, visit "
                       f"the SubscribeURL included in this message.",
            "SubscribeURL": subscribe_url, "Timestamp": "2026-11-23T08:59:00.000Z"}


# AWS SES developer guide, "Examples of notifications for Amazon SES": a bounce with a DSN, and a complaint.
SES_BOUNCE = {
    "notificationType": "Bounce",
    "bounce": {"feedbackId": "000001378603177f-7a5433e7-8edb-42ae-af10-f0181f34d6ee-000000",
               "bounceType": "Permanent", "bounceSubType": "General",
               "bouncedRecipients": [{"emailAddress": "ann@example.com", "action": "failed", "status": "5.1.1",
                                      "diagnosticCode": "smtp; 550 5.1.1 user unknown"}],
               "timestamp": "2026-11-23T08:59:38.237Z", "remoteMtaIp": "127.0.2.0",
               "reportingMTA": "dsn; a7-11.smtp-out.us-west-2.amazonses.com"},
    "mail": {"timestamp": "2026-11-23T08:59:37.000Z", "source": "john@example.com",
             "sourceArn": "arn:aws:ses:us-west-2:888888888888:identity/example.com", "sourceIp": "127.0.3.0",
             "sendingAccountId": "123456789012", "callerIdentity": "IAM_user_or_role_name",
             "messageId": "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000",
             "destination": ["ann@example.com"], "headersTruncated": False,
             "headers": [{"name": "From", "value": "\"John Doe\" <john@example.com>"},
                         {"name": "To", "value": "\"Jane Doe\" <ann@example.com>"},
                         {"name": "Message-ID", "value": "custom-message-ID"},
                         {"name": "Subject", "value": "Hello"}],
             "commonHeaders": {"from": ["\"John Doe\" <john@example.com>"], "date": "Mon, 23 Nov 2026 08:59:37 +0000",
                               "to": ["\"Jane Doe\" <ann@example.com>"], "messageId": "custom-message-ID",
                               "subject": "Hello"}},
}
SES_COMPLAINT = {
    "notificationType": "Complaint",
    "complaint": {"userAgent": "AnyCompany Feedback Loop (V0.01)",
                  "complainedRecipients": [{"emailAddress": "ann@example.com"}],
                  "complaintFeedbackType": "abuse", "arrivalDate": "2026-11-23T08:59:38.237Z",
                  "timestamp": "2026-11-23T08:59:38.237Z",
                  "feedbackId": "000001378603177f-18c07c78-fa81-4a58-9dd1-fedc3cb8f49a-000000"},
    "mail": copy.deepcopy(SES_BOUNCE["mail"]),
}


def ses_about(sample: dict, *, source: str | None = None, message_id: str | None = None) -> dict:
    """The sample, about our message: its envelope sender (our VERP return path) and/or its Message-ID."""
    ses = copy.deepcopy(sample)
    if source is not None:
        ses["mail"]["source"] = source
    if message_id is not None:
        ses["mail"]["commonHeaders"]["messageId"] = message_id
        ses["mail"]["headers"][2]["value"] = message_id
    return ses


# --- Postmark ----------------------------------------------------------------------------------------------

def postmark_bounce(metadata_message_id: str, type_: str = "HardBounce") -> dict:
    """Postmark's sample bounce webhook (postmarkapp.com/developer/webhooks/bounce-webhook)."""
    return {"RecordType": "Bounce", "MessageStream": "outbound", "ID": 4323372036854775807, "Type": type_,
            "TypeCode": 1, "Name": "Hard bounce", "Tag": "Test", "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
            "Metadata": {"nurture-message-id": metadata_message_id}, "ServerID": 23,
            "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
            "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
            "Email": "ann@example.com", "From": "hello@juniper.test", "BouncedAt": "2026-11-23T09:00:00Z",
            "DumpAvailable": True, "Inactive": True, "CanActivate": True, "Subject": "Test subject"}


def postmark_delivery(metadata_message_id: str) -> dict:
    return {"RecordType": "Delivery", "ServerID": 23, "MessageStream": "outbound",
            "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483", "Recipient": "ann@example.com", "Tag": "welcome",
            "DeliveredAt": "2026-11-23T09:00:00Z", "Details": "Test delivery webhook details",
            "Metadata": {"nurture-message-id": metadata_message_id}}


def postmark_open(metadata_message_id: str) -> dict:
    return {"RecordType": "Open", "MessageStream": "outbound", "FirstOpen": True, "Recipient": "ann@example.com",
            "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483", "ReceivedAt": "2026-11-23T09:05:00Z",
            "Platform": "WebMail", "ReadSeconds": 5, "Tag": "welcome", "UserAgent": "Mozilla/5.0",
            "Metadata": {"nurture-message-id": metadata_message_id}}


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# --- SendGrid ----------------------------------------------------------------------------------------------

def sendgrid_keys() -> tuple[ec.EllipticCurvePrivateKey, str]:
    """A P-256 key pair; the public half as SendGrid shows it (base64 DER SubjectPublicKeyInfo)."""
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key, base64.b64encode(der).decode()


def sendgrid_headers(key: ec.EllipticCurvePrivateKey, payload: bytes, timestamp: int) -> dict[str, str]:
    signature = key.sign(str(timestamp).encode() + payload, ec.ECDSA(hashes.SHA256()))
    return {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": str(timestamp), "Content-Type": "application/json"}


def sendgrid_events(smtp_id: str, *names: str) -> list[dict]:
    """SendGrid's sample events (docs: Event Webhook reference), for our message's smtp-id."""
    base = {"email": "ann@example.com", "timestamp": 1795424400, "smtp-id": smtp_id, "category": "cat facts",
            "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0"}
    extra = {"delivered": {"response": "250 OK"}, "open": {"useragent": "Mozilla/4.0", "ip": "255.255.255.255"},
             "bounce": {"type": "bounce", "status": "5.0.0", "reason": "500 unknown recipient",
                        "bounce_classification": "Invalid Address"},
             "blocked": {"event": "bounce", "type": "blocked", "status": "4.0.0",
                         "reason": "421 temporarily deferred due to user complaints"},
             "spamreport": {}, "deferred": {"response": "400 try again later", "attempt": "5"}}
    return [{**base, "event": name, "sg_event_id": f"rWVYmVk90MjZJ9iohOBa3w-{i}", **extra[name]}
            for i, name in enumerate(names)]


# --- Mailgun -----------------------------------------------------------------------------------------------

def mailgun_signed(event_data: object, timestamp: int, token: str, key: str = MAILGUN_KEY) -> dict:
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {"signature": {"timestamp": str(timestamp), "token": token, "signature": signature},
            "event-data": event_data}


def mailgun_event(message_id: str, event: str = "failed", **fields: object) -> dict:
    """Mailgun's sample webhook event-data (documentation: Webhooks, permanent failure)."""
    data = {"event": event, "id": f"G9Bn5sl1TC6nu79C8C0bwg-{event}", "timestamp": 1795424400.375624,
            "log-level": "error", "severity": "permanent", "reason": "suppress-bounce",
            "envelope": {"sender": "bob@mg.juniper.test", "transport": "smtp", "targets": "ann@example.com"},
            "recipient": "ann@example.com", "recipient-domain": "example.com",
            "message": {"headers": {"to": "Ann <ann@example.com>", "message-id": message_id.strip("<>"),
                                    "from": "Juniper <hello@juniper.test>", "subject": "Test permanent_fail webhook"},
                        "attachments": [], "size": 111},
            "delivery-status": {"attempt-no": 1, "message": "", "code": 605,
                                "description": "Not delivering to previously bounced address", "session-seconds": 0},
            "flags": {"is-routed": False, "is-authenticated": True, "is-system-test": False, "is-test-mode": False},
            "tags": ["my_tag_1"], "user-variables": {"my_var_1": "Mailgun Variable #1"}}
    data.update(fields)
    return data


# --- for the fuzz test: one set of keys per test process, and a request for each provider -------------------

FUZZ_NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
FUZZ_SNS_KEY, FUZZ_SNS_CERT = rsa_certificate(FUZZ_NOW)
FUZZ_SENDGRID_KEY, FUZZ_SENDGRID_PUBLIC = sendgrid_keys()
HOOK_PATHS = ("/hooks/ses", "/hooks/postmark", "/hooks/sendgrid", "/hooks/mailgun")


def hook_env() -> dict[str, str]:
    return {"SES_SNS_TOPIC_ARNS": TOPIC, "SNS_CERT_HOSTS": "127.0.0.1", "POSTMARK_WEBHOOK_USER": POSTMARK_USER,
            "POSTMARK_WEBHOOK_PASSWORD": POSTMARK_PASSWORD, "SENDGRID_WEBHOOK_PUBLIC_KEY": FUZZ_SENDGRID_PUBLIC,
            "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY}


def hook_request(path: str, body: object, signed: bool, now: datetime, sns: SnsHost,
                 sns_type: str = "Notification") -> tuple[bytes, dict[str, str]]:
    """The bytes and headers a provider would send to `path` carrying `body`; signed or not."""
    data = json.dumps(body).encode() if not isinstance(body, bytes) else body
    stamp = int(now.timestamp())
    if path == "/hooks/ses":
        sns.files["/cert.pem"] = FUZZ_SNS_CERT
        message = {"Type": sns_type, "MessageId": "m-1", "TopicArn": TOPIC, "Message": data.decode("utf-8", "replace"),
                   "Timestamp": "2026-11-23T09:00:00.000Z", "Token": "t", "SubscribeURL": sns.url + "/confirm"}
        key = FUZZ_SNS_KEY if signed else rsa.generate_private_key(public_exponent=65537, key_size=1024)
        return json.dumps(sns_signed(message, key, sns.url + "/cert.pem")).encode(), {}
    if path == "/hooks/postmark":
        return data, {"Authorization": basic_auth(POSTMARK_USER, POSTMARK_PASSWORD if signed else "wrong-password")}
    if path == "/hooks/sendgrid":
        return data, sendgrid_headers(FUZZ_SENDGRID_KEY if signed else sendgrid_keys()[0], data, stamp)
    token = hashlib.sha256(data).hexdigest()  # a new token for every body: the same body twice is a replay
    event_data = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return json.dumps(mailgun_signed(event_data, stamp, token, MAILGUN_KEY if signed else "key-not-ours-0123456789")
                      ).encode(), {"Content-Type": "application/json"}


def samples(path: str, message_id: str) -> list[object]:
    """The documented samples for `path`, about the delivery whose Message-ID is `message_id` (fresh copies)."""
    if path == "/hooks/ses":
        return [ses_about(SES_BOUNCE, message_id=message_id), ses_about(SES_COMPLAINT, message_id=message_id),
                {**ses_about(SES_BOUNCE, message_id=message_id), "notificationType": "Delivery"}]
    if path == "/hooks/postmark":
        return [postmark_bounce(message_id), postmark_bounce(message_id, "SoftBounce"), postmark_delivery(message_id),
                postmark_open(message_id)]
    if path == "/hooks/sendgrid":
        return [sendgrid_events(message_id, "delivered", "open", "bounce", "blocked", "spamreport", "deferred")]
    return [mailgun_event(message_id), mailgun_event(message_id, "delivered"), mailgun_event(message_id, "complained"),
            mailgun_event(message_id, reason="old")]
