"""Feedback: a one-click 0-10 rating from a feedback email, an optional comment, and what follows.

Promoters (9-10) go on to the referral request (a condition in the customer sequence); detractors (0-6)
get no referral ask, and the owner gets an alert — held a few minutes so the comment can go with it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session

from nurture.people import automation
from nurture.store import alerts
from nurture.store import contacts as store
from nurture.store.models import Contact, Delivery

ALERT_DELAY = timedelta(minutes=10)  # time to write the comment before the owner is told


def category(score: int) -> str:
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


def record_rating(session: Session, rt, delivery: Delivery, contact: Contact, score: int, bot: bool,  # noqa: ANN001
                  now: datetime) -> None:
    """A rating event (conditions see it as {event: rating, where: {score: ">= 9"}})."""
    data = {"score": score, "category": category(score), "sequence": delivery.sequence_id,
            "step": delivery.step_id, "delivery": delivery.id, "bot": bot}
    automation.record(session, rt, contact, "rating", data, now)
    owner = rt.sequences.lifecycle.owner_email
    if bot or category(score) != "detractor" or not owner:
        return
    name = f"{contact.first_name} {contact.last_name}".strip() or contact.email
    automation.queue_alert(session, contact, f"detractor:{delivery.id}", owner,
                           f"{name} rated us {score}/10", _body(name, contact.email, score, None), now,
                           send_after=now + ALERT_DELAY)


def record_comment(session: Session, rt, delivery: Delivery, contact: Contact, score: int, comment: str,  # noqa: ANN001
                   now: datetime) -> None:
    automation.record(session, rt, contact, "feedback.comment",
                      {"score": score, "comment": comment, "delivery": delivery.id}, now)
    name = f"{contact.first_name} {contact.last_name}".strip() or contact.email
    # The detractor alert, if still waiting, goes out with the comment in it.
    alerts.rewrite_pending(session, f"detractor:{delivery.id}", _body(name, contact.email, score, comment))


def _body(name: str, email: str, score: int, comment: str | None) -> str:
    said = f"They wrote:\n\n{comment}\n" if comment else "They left no comment (yet).\n"
    return (f"{name} <{email}> rated their experience {score}/10.\n\n{said}\n"
            f"Reply to them directly, or see their timeline: nurture contacts show {email}\n")


def delivery_and_contact(session: Session, delivery_id: int) -> tuple[Delivery, Contact] | None:
    return store.delivery_with_contact(session, delivery_id)


