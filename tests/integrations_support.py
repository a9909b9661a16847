"""Fixtures for the inbound integrations: Stripe's test-mode payload shapes, signed with a secret made in
the test by the stripe package's own header generator; signed generic hook bodies (nurture, Shopify,
Calendly styles); the app served over real HTTP; an integrations.yaml written into the test's project."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import stripe
from sqlmodel import Session, select

from nurture.rules.inbound_signatures import nurture_header
from nurture.runtime import Runtime
from nurture.store.models import Contact, Enrollment, Event
from nurture.web import create_app
from tests.conftest import free_port
from tests.test_browser import serve

STRIPE_SECRET = "whsec_test_" + secrets.token_hex(16)  # made here, for these tests only
SHOP_SECRET = secrets.token_hex(16)
CALENDLY_SECRET = secrets.token_hex(16)
GENERIC_SECRET = secrets.token_hex(16)
SECRETS = {"STRIPE_WEBHOOK_SECRET": STRIPE_SECRET, "SHOPIFY_WEBHOOK_SECRET": SHOP_SECRET,
           "CALENDLY_WEBHOOK_SECRET": CALENDLY_SECRET, "STUDIO_WEBHOOK_SECRET": GENERIC_SECRET}

INTEGRATIONS = """\
stripe:
  products:
    price_1QtestWheel6Week: wheel-6-week
    prod_RtestTaster: taster-class
    plink_1QtestGlaze: glaze-kit
hooks:
  shopify-orders:
    secret: SHOPIFY_WEBHOOK_SECRET
    signature: shopify
    event: purchase
    id: id
    fields: {email: email, first_name: customer.first_name, amount: total_price, currency: currency,
             product: line_items.0.sku}
    products: {GLAZE-KIT-01: glaze-kit}
  calendly-bookings:
    secret: CALENDLY_WEBHOOK_SECRET
    signature: calendly
    event: class-booked
    id: payload.uri
    when: {event: invitee.created}
    fields: {email: payload.email, first_name: payload.first_name, class: payload.scheduled_event.name}
  studio-pos:
    secret: STUDIO_WEBHOOK_SECRET
    event: purchase
    id: sale.ref
    fields: {email: sale.buyer, amount: sale.total, currency: sale.currency, product: sale.item}
attribution: {click: 5d, send: 7d}
"""


def write_integrations(project: Path, text: str = INTEGRATIONS) -> Path:
    path = project / "integrations.yaml"
    path.write_text(text)
    return path


# --- Stripe's payloads, as test mode sends them ---------------------------------------------------------------

def stripe_event(kind: str, obj: dict, when: datetime, event_id: str | None = None) -> dict:
    return {"id": event_id or "evt_1Qtest" + secrets.token_hex(8), "object": "event", "api_version": "2024-06-20",
            "created": int(when.timestamp()), "livemode": False, "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None}, "type": kind, "data": {"object": obj}}


def checkout_completed(email: str, when: datetime, amount: int = 24000, currency: str = "usd",
                       payment_link: str | None = None, name: str = "Ann Lee", metadata: dict | None = None,
                       promotions: str | None = None) -> dict:
    """`promotions`: what the buyer chose in Checkout's consent collection ("opt_in" / "opt_out")."""
    return stripe_event("checkout.session.completed", {
        "id": "cs_test_a1" + secrets.token_hex(12), "object": "checkout.session", "amount_subtotal": amount,
        "amount_total": amount, "currency": currency, "customer": "cus_Rtest" + secrets.token_hex(4),
        "customer_details": {"email": email, "name": name, "phone": None, "tax_exempt": "none", "tax_ids": [],
                             "address": {"city": "Portland", "country": "US", "line1": None, "line2": None,
                                         "postal_code": "97201", "state": "OR"}},
        "customer_email": None, "livemode": False, "metadata": metadata or {}, "mode": "payment",
        "payment_intent": "pi_3Qtest" + secrets.token_hex(8), "payment_link": payment_link,
        "payment_status": "paid", "status": "complete", "success_url": "https://juniper.example/thanks",
        "consent": {"promotions": promotions, "terms_of_service": None} if promotions else None,
        "consent_collection": {"promotions": "auto", "terms_of_service": "none"} if promotions else None,
    }, when)


def invoice_paid(email: str, when: datetime, price: str = "price_1QtestWheel6Week", amount: int = 24000,
                 new_shape: bool = False) -> dict:
    """An invoice.paid; `new_shape`: the line's price as API versions from 2025-03-31 put it (pricing)."""
    price_fields = ({"pricing": {"type": "price_details", "price_details": {"price": price, "product": "prod_x"}}}
                    if new_shape else {"price": {"id": price, "object": "price", "product": "prod_x"}})
    return stripe_event("invoice.paid", {
        "id": "in_1Qtest" + secrets.token_hex(8), "object": "invoice", "amount_due": amount, "amount_paid": amount,
        "currency": "usd", "customer": "cus_Rtest1", "customer_email": email, "customer_name": "Bea Moss",
        "status": "paid", "lines": {"object": "list", "has_more": False, "data": [
            {"id": "il_1Qtest", "object": "line_item", "amount": amount, "currency": "usd", "quantity": 1,
             **price_fields}]},
    }, when)


def charge_refunded(email: str, when: datetime, amount: int = 24000, payment_intent: str = "pi_3Qtest1") -> dict:
    return stripe_event("charge.refunded", {
        "id": "ch_3Qtest" + secrets.token_hex(8), "object": "charge", "amount": amount, "amount_refunded": amount,
        "currency": "usd", "billing_details": {"email": email, "name": "Ann Lee"}, "receipt_email": email,
        "payment_intent": payment_intent, "refunded": True, "status": "succeeded",
    }, when)


def stripe_signed(event: dict, secret: str = STRIPE_SECRET) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event)
    header = stripe.WebhookSignature.generate_signature_header(body, secret)
    return body.encode(), {"Stripe-Signature": header, "Content-Type": "application/json"}


# --- generic hooks --------------------------------------------------------------------------------------------

def shopify_signed(payload: dict, secret: str = SHOP_SECRET) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    digest = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return body, {"X-Shopify-Hmac-Sha256": digest, "X-Shopify-Topic": "orders/paid",
                  "Content-Type": "application/json"}


def calendly_signed(payload: dict, when: datetime, secret: str = CALENDLY_SECRET) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    stamp = str(int(when.timestamp()))
    mac = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return body, {"Calendly-Webhook-Signature": f"t={stamp},v1={mac}", "Content-Type": "application/json"}


def nurture_signed(payload: dict, secret: str = GENERIC_SECRET) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    return body, {"X-Nurture-Signature": nurture_header(body, secret), "Content-Type": "application/json"}


# --- the app over real HTTP -----------------------------------------------------------------------------------

@dataclass
class Reply:
    status: int
    body: dict


@dataclass
class Site:
    rt: Runtime
    base: str

    def post(self, path: str, signed: tuple[bytes, dict[str, str]]) -> Reply:
        body, headers = signed
        request = urllib.request.Request(self.base + path, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return Reply(response.status, json.loads(response.read()))
        except urllib.error.HTTPError as exc:
            return Reply(exc.code, json.loads(exc.read()))


def open_site(make_runtime, database_url: str, project: Path) -> Iterator[Site]:  # noqa: ANN001
    """For a fixture: the app (with this module's integrations.yaml and secrets) on a port of its own."""
    write_integrations(project)
    rt = make_runtime(database_url, **SECRETS)
    port = free_port()
    stop = serve(create_app(rt), port)
    yield Site(rt, f"http://127.0.0.1:{port}")
    stop()


# --- what was recorded ----------------------------------------------------------------------------------------

def events_of(rt: Runtime, email: str, type_: str | None = None) -> list[Event]:
    with Session(rt.db) as session:
        contact = session.exec(select(Contact).where(Contact.email == email)).first()
        if contact is None:
            return []
        query = select(Event).where(Event.contact_id == contact.id)
        if type_:
            query = query.where(Event.type == type_)
        return list(session.exec(query.order_by(Event.id)))


def contact_of(rt: Runtime, email: str) -> Contact | None:
    with Session(rt.db) as session:
        return session.exec(select(Contact).where(Contact.email == email)).first()


def enrollments_of(rt: Runtime, email: str) -> dict[str, Enrollment]:
    with Session(rt.db) as session:
        contact = session.exec(select(Contact).where(Contact.email == email)).one()
        return {e.sequence_id: e for e in session.exec(select(Enrollment).where(Enrollment.contact_id == contact.id))}


def count_all_events(rt: Runtime) -> int:
    with Session(rt.db) as session:
        return len(session.exec(select(Event.id)).all())
