"""What proving a provider webhook costs: each provider's check, per request, against parsing its JSON body
(what any endpoint pays). Not a target of issue 16; printed so a change to the checks shows its price.

    .venv/bin/python bench/provider_hooks.py [--n 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nurture.config.providers import ProviderSettings  # noqa: E402
from nurture.web.hooks import signatures, sns  # noqa: E402
from tests.provider_hooks_support import (  # noqa: E402
    FUZZ_NOW,
    FUZZ_SENDGRID_KEY,
    FUZZ_SENDGRID_PUBLIC,
    FUZZ_SNS_CERT,
    FUZZ_SNS_KEY,
    MAILGUN_KEY,
    SES_BOUNCE,
    TOPIC,
    SnsHost,
    mailgun_event,
    mailgun_signed,
    sendgrid_events,
    sendgrid_headers,
    sns_notification,
    sns_signed,
)


def per_call(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    n = parser.parse_args().n
    host = SnsHost()
    host.files["/cert.pem"] = FUZZ_SNS_CERT
    settings = ProviderSettings(SES_SNS_TOPIC_ARNS=TOPIC, SNS_CERT_HOSTS="127.0.0.1")
    now = FUZZ_NOW
    stamp = int(now.timestamp())
    results = {}
    for version in ("1", "2"):
        body = sns_signed(sns_notification("m", SES_BOUNCE), FUZZ_SNS_KEY, host.url + "/cert.pem", version)
        raw = json.dumps(body).encode()
        sns.verify(settings, body, now)  # the certificate fetched once, then kept
        results[f"SNS v{version}"] = (per_call(lambda b=body: sns.verify(settings, b, now), n),
                                      per_call(lambda r=raw: json.loads(r), n))
    payload = json.dumps(sendgrid_events("<a@b>", "delivered", "open", "bounce")).encode()
    headers = sendgrid_headers(FUZZ_SENDGRID_KEY, payload, stamp)
    sig, ts = headers["X-Twilio-Email-Event-Webhook-Signature"], headers["X-Twilio-Email-Event-Webhook-Timestamp"]
    assert signatures.sendgrid_ok(FUZZ_SENDGRID_PUBLIC, sig, ts, payload)
    results["SendGrid ECDSA"] = (per_call(lambda: signatures.sendgrid_ok(FUZZ_SENDGRID_PUBLIC, sig, ts, payload), n),
                                 per_call(lambda: json.loads(payload), n))
    mg = mailgun_signed(mailgun_event("<a@b>"), stamp, "tok")
    mg_raw = json.dumps(mg).encode()
    proof = mg["signature"]
    results["Mailgun HMAC"] = (per_call(lambda: signatures.mailgun_ok(MAILGUN_KEY, proof["timestamp"], proof["token"],
                                                                      proof["signature"]), n),
                               per_call(lambda: json.loads(mg_raw), n))
    results["Postmark basic"] = (per_call(lambda: signatures.postmark_ok("u", "p" * 20, "u", "p" * 20), n),
                                 per_call(lambda: json.loads(mg_raw), n))
    host.close()
    load = os.getloadavg()[0]
    print(f"provider webhook proof, per request ({n} each, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load {load:.1f})")
    for name, (check, parse) in results.items():
        print(f"  {name:<15} {check:8.1f} us   JSON parse of its body {parse:6.1f} us   ratio {check / parse:6.1f}")


if __name__ == "__main__":
    main()
