"""Webhooks in: Stripe's test-mode payloads signed with a secret made in the test and posted over real HTTP to
POST /integrations/stripe (valid: one event even when posted three times; forged: 400, nothing recorded), and
generic signed hooks (Shopify, Calendly, our own style) wired by integrations.yaml alone. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from nurture.people import erasure
from nurture.people.owner_actions import Actor
from nurture.store.models import Contact, EnrollmentStatus, Event, Subscription
from nurture.web import create_app
from tests.helpers import add_contact, send_due
from tests.integrations_support import (
    STRIPE_SECRET,
    Site,
    calendly_signed,
    charge_refunded,
    checkout_completed,
    contact_of,
    count_all_events,
    enrollments_of,
    events_of,
    invoice_paid,
    nurture_signed,
    open_site,
    shopify_signed,
    stripe_signed,
)


@pytest.fixture
def integrations_site(make_runtime, database_url: str, project: Path) -> Iterator[Site]:  # noqa: ANN001
    yield from open_site(make_runtime, database_url, project)


def test_a_stripe_checkout_posted_three_times_is_one_purchase_that_ends_nurture_and_starts_the_customer_sequence(
        integrations_site: Site) -> None:
    rt = integrations_site.rt
    add_contact(rt, "ann@example.com", "lead-nurture", first_name="Ann")
    send_due(rt)  # edu-1
    event = checkout_completed("Ann@Example.com", rt.clock(), amount=24000, payment_link="plink_1QtestGlaze")
    signed = stripe_signed(event)
    replies = [integrations_site.post("/integrations/stripe", signed) for _ in range(3)]  # Stripe's retries
    assert [r.status for r in replies] == [200, 200, 200]
    assert [r.body["recorded"] for r in replies] == [True, False, False]
    assert len({r.body["id"] for r in replies}) == 1
    purchases = events_of(rt, "ann@example.com", "purchase")
    assert len(purchases) == 1
    assert purchases[0].data["product"] == "glaze-kit" and purchases[0].data["amount"] == 240.0
    assert purchases[0].data["currency"] == "USD" and purchases[0].idempotency_key == f"stripe:{event['id']}"
    ann = contact_of(rt, "ann@example.com")
    assert ann.stage == "customer" and ann.email_status == Subscription.SUBSCRIBED  # her consent unchanged
    runs = enrollments_of(rt, "ann@example.com")
    assert runs["lead-nurture"].status == EnrollmentStatus.COMPLETED
    assert runs["lead-nurture"].stop_reason == "goal reached: event purchase"
    assert runs["customer"].status == EnrollmentStatus.ACTIVE and runs["customer"].step_id == "thank-you"
    assert send_due(rt).get("sent") == 1  # the customer sequence's thank-you, once


def test_a_forged_or_unsigned_stripe_event_is_refused_and_records_nothing(integrations_site: Site) -> None:
    rt = integrations_site.rt
    add_contact(rt, "ann@example.com", "lead-nurture")
    before = count_all_events(rt)
    event = checkout_completed("ann@example.com", rt.clock())
    body, headers = stripe_signed(event, secret="whsec_someone_else")
    assert integrations_site.post("/integrations/stripe", (body, headers)).status == 400
    body, headers = stripe_signed(event)
    tampered = body.replace(b"24000", b"1")
    reply = integrations_site.post("/integrations/stripe", (tampered, headers))
    assert reply.status == 400 and "Stripe-Signature" in reply.body["error"]
    assert integrations_site.post("/integrations/stripe", (body, {"Content-Type": "application/json"})).status == 400
    assert integrations_site.post("/integrations/stripe", (b"[1, 2]", headers)).status == 400
    assert count_all_events(rt) == before
    assert events_of(rt, "ann@example.com", "purchase") == []


def test_a_new_buyer_is_created_without_marketing_consent_and_refunds_and_unknown_types_are_handled(
        integrations_site: Site) -> None:
    rt = integrations_site.rt
    reply = integrations_site.post("/integrations/stripe", stripe_signed(
        invoice_paid("bea@example.com", rt.clock(), price="price_1QtestWheel6Week", new_shape=True)))
    assert reply.status == 200 and reply.body["recorded"] is True
    bea = contact_of(rt, "bea@example.com")
    assert bea.email_status == Subscription.NONE and bea.first_name == "Bea" and bea.stage == "customer"
    assert events_of(rt, "bea@example.com", "purchase")[0].data["product"] == "wheel-6-week"
    assert send_due(rt).get("skipped") == 1  # the customer sequence's email: no marketing consent implied
    assert enrollments_of(rt, "bea@example.com")["customer"].stop_reason == "no email consent"

    refund = integrations_site.post("/integrations/stripe", stripe_signed(charge_refunded("bea@example.com", rt.clock(),
                                                                                          12000)))
    assert refund.status == 200 and refund.body["type"] == "refund"
    assert events_of(rt, "bea@example.com", "refund")[0].data["amount"] == 120.0

    before = count_all_events(rt)
    other = checkout_completed("bea@example.com", rt.clock())
    other["type"] = "customer.subscription.updated"
    ignored = integrations_site.post("/integrations/stripe", stripe_signed(other))
    assert ignored.status == 200 and ignored.body["recorded"] is False and "not one nurture records" in ignored.body[
        "ignored"]
    assert count_all_events(rt) == before


def test_amounts_follow_the_currency_and_an_unmapped_price_is_a_purchase_without_product(
        integrations_site: Site) -> None:
    rt = integrations_site.rt
    integrations_site.post("/integrations/stripe", stripe_signed(
        checkout_completed("yuki@example.com", rt.clock(), amount=5000, currency="jpy",
                           metadata={"price": "price_unknown"})))
    purchase = events_of(rt, "yuki@example.com", "purchase")[0]
    assert purchase.data["amount"] == 5000.0 and purchase.data["currency"] == "JPY" and purchase.data["product"] == ""


def test_stripe_without_a_secret_configured_answers_404(make_runtime, sqlite_url) -> None:  # noqa: ANN001
    rt = make_runtime(sqlite_url)
    body, headers = stripe_signed(checkout_completed("ann@example.com", rt.clock()))
    reply = create_app(rt).test_client().post("/integrations/stripe", data=body, headers=headers)
    assert reply.status_code == 404 and "STRIPE_WEBHOOK_SECRET" in reply.json["error"]


# --- generic hooks --------------------------------------------------------------------------------------------

def shopify_order(order_id: int, email: str) -> dict:
    """The fields of Shopify's orders/paid payload the example maps (the real one has many more)."""
    return {"id": order_id, "admin_graphql_api_id": f"gid://shopify/Order/{order_id}", "name": "#1001",
            "email": email, "currency": "USD", "total_price": "199.65", "financial_status": "paid",
            "customer": {"id": 115310627314723954, "email": email, "first_name": "Jon", "last_name": "Doe"},
            "line_items": [{"id": 866550311766439020, "sku": "GLAZE-KIT-01", "title": "Home glaze kit",
                            "quantity": 1, "price": "199.65"}]}


def test_a_shopify_order_is_a_purchase_once_and_a_forged_one_is_refused(integrations_site: Site) -> None:
    rt = integrations_site.rt
    signed = shopify_signed(shopify_order(820982911946154508, "jon@example.com"))
    replies = [integrations_site.post("/integrations/hooks/shopify-orders", signed) for _ in range(3)]
    assert [r.body["recorded"] for r in replies] == [True, False, False]
    purchase = events_of(rt, "jon@example.com", "purchase")
    assert len(purchase) == 1 and purchase[0].idempotency_key == "hook:shopify-orders:820982911946154508"
    assert purchase[0].data == {"source": "hook:shopify-orders", "amount": 199.65, "currency": "USD",
                                "product": "glaze-kit"}
    assert contact_of(rt, "jon@example.com").first_name == "Jon"

    before = count_all_events(rt)
    body, headers = shopify_signed(shopify_order(1, "eve@example.com"), secret="not-the-shop-secret")
    assert integrations_site.post("/integrations/hooks/shopify-orders", (body, headers)).status == 400
    body, headers = nurture_signed(shopify_order(1, "eve@example.com"))  # the wrong style for this hook
    assert integrations_site.post("/integrations/hooks/shopify-orders", (body, headers)).status == 400
    assert integrations_site.post("/integrations/hooks/no-such-hook", signed).status == 404
    assert count_all_events(rt) == before and contact_of(rt, "eve@example.com") is None


def calendly_booking(kind: str, email: str) -> dict:
    uri = "https://api.calendly.com/scheduled_events/GBGBDCAADAEDCRZ2/invitees/AAAAAAAAAAAAAAAA"
    return {"event": kind, "created_at": "2026-11-23T09:00:00.000000Z",
            "payload": {"email": email, "first_name": "Kim", "last_name": "Ono", "name": "Kim Ono",
                        "status": "active", "uri": uri, "timezone": "America/Los_Angeles",
                        "scheduled_event": {"name": "Taster class", "start_time": "2026-11-28T18:00:00.000000Z"}}}


def test_a_calendly_booking_is_an_event_and_a_cancellation_or_a_replay_is_not(integrations_site: Site) -> None:
    rt = integrations_site.rt
    reply = integrations_site.post("/integrations/hooks/calendly-bookings",
                                   calendly_signed(calendly_booking("invitee.created", "kim@example.com"), rt.clock()))
    assert reply.status == 200 and reply.body["type"] == "class-booked"
    booked = events_of(rt, "kim@example.com", "class-booked")
    assert booked[0].data == {"source": "hook:calendly-bookings", "class": "Taster class"}
    cancelled = integrations_site.post("/integrations/hooks/calendly-bookings", calendly_signed(
        calendly_booking("invitee.canceled", "kim@example.com"), rt.clock()))
    assert cancelled.status == 200 and cancelled.body["recorded"] is False
    stale = calendly_signed(calendly_booking("invitee.created", "lou@example.com"), rt.clock() - timedelta(hours=1))
    assert integrations_site.post("/integrations/hooks/calendly-bookings", stale).status == 400
    assert contact_of(rt, "lou@example.com") is None


@pytest.mark.parametrize("payload, why", [
    ({"sale": {"ref": "r1", "total": 10}}, "no email"),
    ({"sale": {"buyer": "pat@example.com", "total": 10}}, "no id"),
])
def test_a_signed_payload_without_what_the_mapping_needs_is_acknowledged_and_ignored(
        integrations_site: Site, payload: dict, why: str) -> None:
    reply = integrations_site.post("/integrations/hooks/studio-pos", nurture_signed(payload))
    assert reply.status == 200 and reply.body["recorded"] is False
    assert why.split()[1] in reply.body["ignored"]


def test_a_signed_payload_with_an_address_that_is_none_is_a_clear_400(integrations_site: Site) -> None:
    reply = integrations_site.post("/integrations/hooks/studio-pos", nurture_signed(
        {"sale": {"ref": "r2", "buyer": "not an address", "total": "12.50", "item": "taster-class"}}))
    assert reply.status == 400 and reply.body["field"] == "email"
    assert STRIPE_SECRET not in str(reply.body)


def test_the_same_stripe_event_delivered_five_times_at_once_is_recorded_once(integrations_site: Site) -> None:
    from concurrent.futures import ThreadPoolExecutor

    rt = integrations_site.rt
    signed = stripe_signed(checkout_completed("new-buyer@example.com", rt.clock()))
    with ThreadPoolExecutor(5) as pool:
        replies = list(pool.map(lambda _: integrations_site.post("/integrations/stripe", signed), range(5)))
    assert {r.status for r in replies} <= {200, 409}, [(r.status, r.body) for r in replies]
    assert [r.body.get("recorded") for r in replies].count(True) == 1
    assert integrations_site.post("/integrations/stripe", signed).body["recorded"] is False  # Stripe's retry
    assert len(events_of(rt, "new-buyer@example.com", "purchase")) == 1


def test_a_buyer_who_ticks_checkout_s_promotions_box_is_subscribed_with_the_proof_and_only_then(
        integrations_site: Site) -> None:
    from sqlmodel import Session

    from nurture.people.preferences import consent_history
    from nurture.store.contacts import set_status

    rt = integrations_site.rt
    for email, choice in (("opt@example.com", "opt_in"), ("no@example.com", "opt_out"), ("gone@example.com", "opt_in")):
        if email == "gone@example.com":  # unsubscribed before: a payment page does not undo that
            contact_id = add_contact(rt, email)
            with Session(rt.db) as session:
                set_status(session, contact_id, "email_status", Subscription.UNSUBSCRIBED, rt.clock())
                session.commit()
        event = checkout_completed(email, rt.clock(), promotions=choice)
        assert integrations_site.post("/integrations/stripe", stripe_signed(event)).body["recorded"] is True
    assert contact_of(rt, "opt@example.com").email_status == Subscription.SUBSCRIBED
    assert contact_of(rt, "no@example.com").email_status == Subscription.NONE
    assert contact_of(rt, "gone@example.com").email_status == Subscription.UNSUBSCRIBED
    opted, declined = contact_of(rt, "opt@example.com").id, contact_of(rt, "no@example.com").id
    with Session(rt.db) as session:  # (one session at a time: SQLite's writer lock is taken at BEGIN)
        proof = consent_history(session, opted)
        assert [(c.method, c.action) for c in proof] == [("stripe-checkout", "opt-in")]
        assert "cs_test_" in proof[0].consent_text and proof[0].consent_hash
        assert consent_history(session, declined) == []
    assert send_due(rt) == {"sent": 1, "skipped": 2}  # the thank-you: only to the one who opted in


def erase_contact(rt, email: str) -> None:  # noqa: ANN001
    with Session(rt.db) as session:
        erasure.erase(session, session.exec(select(Contact).where(Contact.email == email)).one(),
                      Actor("owner@example.com", "console"), rt.clock())
        session.commit()


def test_an_event_for_an_erased_address_is_acknowledged_and_records_nothing(integrations_site: Site) -> None:
    # A 400 would have Stripe (and most senders) retry it for days; the person asked to be forgotten, so the
    # event is acknowledged, ignored, and nothing that names them is written.
    rt = integrations_site.rt
    add_contact(rt, "gone@example.com", "lead-nurture")
    erase_contact(rt, "gone@example.com")
    before = count_all_events(rt)
    for path, signed in (
            ("/integrations/stripe", stripe_signed(checkout_completed("Gone@Example.com", rt.clock()))),
            ("/integrations/hooks/shopify-orders", shopify_signed(shopify_order(42, "gone@example.com"))),
            ("/integrations/hooks/studio-pos", nurture_signed(
                {"sale": {"ref": "r9", "buyer": "gone@example.com", "total": "12.50", "item": "taster-class"}}))):
        reply = integrations_site.post(path, signed)
        assert (reply.status, reply.body) == (200, {"recorded": False, "ignored": "erased"}), path
    assert count_all_events(rt) == before and contact_of(rt, "gone@example.com") is None
    with Session(rt.db) as session:
        assert not any("gone@example.com" in str(e.data) for e in session.exec(select(Event)))
