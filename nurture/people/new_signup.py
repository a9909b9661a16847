"""A sign-up from an address no contact has yet: the common case, in one statement on PostgreSQL.

`nurture.people.signup.submit` tries this first. It writes exactly the rows the general path (find or
create, record the consent, set the SMS choice, enroll) writes for a new address, in the same order, with
every column decided here up front, so no row is written and then changed: the contact with its final
statuses, the email (and SMS) opt-in, the enrollment in the form's confirmation or welcome sequence, and
the timeline. tests/test_signup_writes.py holds the two paths' rows side by side.

When the address is known (or another sign-up of it commits first) nothing is written and the general
path merges into the contact, as before.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.engine import Engine

from nurture.content.forms import Form
from nurture.people.contacts import enrolled_data, enrollment_row
from nurture.people.preferences import Origin, consent_row
from nurture.people.submission import Submission
from nurture.rules.erasure import address_digest
from nurture.rules.sequence import Sequence
from nurture.store import signups as store
from nurture.store.models import ConsentAction, Subscription

MAX_SOURCE = 200  # the column's size


def create(db: Engine, form: Form, submission: Submission, origins: tuple[Origin, Origin], sequence: Sequence,
           lead_magnet: Callable[[int], dict] | None, now: datetime) -> int | None:
    """Sign up `submission` as a new contact, all or nothing: the new id, or None (nothing written) when a
    contact has the address. `origins` are the email and SMS consent's; `sequence` is the one the form
    starts (its confirmation sequence with double opt-in); `lead_magnet(contact_id)` gives what a single
    opt-in welcome email links to (`contact.fields.lead_magnet`: its URL is signed with the id)."""
    sms = submission.sms_consent and bool(submission.phone)  # preferences.set_sms: no number, no texts
    pending = form.double_opt_in
    attribution = {**submission.attribution, "form": form.id}
    source = (submission.attribution.get("source") or f"form:{form.id}")[:MAX_SOURCE]
    contact = {
        "email": submission.email, "first_name": submission.first_name, "last_name": submission.last_name,
        "phone": submission.phone, "timezone": submission.timezone, "locale": submission.locale,
        "fields": dict(submission.fields),
        "tags": list(form.tags), "attribution": attribution, "source": source,
        "email_status": Subscription.PENDING if pending else Subscription.SUBSCRIBED,
        "sms_status": Subscription.SUBSCRIBED if sms else Subscription.NONE,
        "pending_form": form.id if pending else None, "pending_since": now if pending else None,
        "created_at": now, "updated_at": now,
    }
    email_origin, sms_origin = origins
    consents = [consent_row(None, "email", ConsentAction.OPT_IN, email_origin, now)]
    events = [store.event_row("contact.created", now, {"source": source, "form": form.id, "attribution": attribution})]
    if sms:
        consents.append(consent_row(None, "sms", ConsentAction.OPT_IN, sms_origin, now))
        events.append(store.event_row("sms.subscribed", now, {"via": sms_origin.method}, sms_origin.delivery_id))
    events.append(store.event_row("signup.submitted", now, {
        "form": form.id, "double_opt_in": form.double_opt_in, "attribution": submission.attribution}))
    enrollment = enrollment_row(None, submission.timezone, sequence, now, entry=1)
    events.append(store.event_row("sequence.enrolled", now, enrolled_data(sequence, enrollment)))
    def with_magnet(contact_id: int) -> dict:
        assert lead_magnet is not None
        return {**submission.fields, "lead_magnet": lead_magnet(contact_id)}

    return store.insert_new_signup(db, contact, {"consent": consents, "enrollment": [enrollment], "event": events},
                                   with_magnet if lead_magnet is not None else None,
                                   address_digest(submission.email))
