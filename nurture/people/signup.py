"""Signing up through a form: double opt-in, confirmation and expiry, each with a consent record.

- `submit`: the contact is created or updated (one per normalised address, never two), its opt-in is
  recorded, and with double opt-in it waits as "pending" while the form's transactional confirmation
  sequence sends the email with the signed link — through the normal exactly-once send path. The send path
  gives nothing but transactional mail to a contact that is not "subscribed".
- `confirm`: "subscribed", a confirm record, and the form's sequence starts, its welcome email carrying the
  lead magnet.
- `expire_pending` (called by the tick): sign-ups not confirmed within SIGNUP_EXPIRY_HOURS lapse.

Raises domain errors (`SignupUnavailable`, `UnknownSignup`); the web layer turns them into pages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session

from nurture.content.forms import HONEYPOT, STARTED, Form, FormRegistry
from nurture.people import automation, new_signup, referrals
from nurture.people.contacts import ContactInput, check_not_erased, enroll, merge_into, record_event, record_merge
from nurture.people.preferences import Origin, record_consent, set_sms
from nurture.people.submission import FORM_ERROR, InvalidSignup, Submission, read_submission
from nurture.rules.locales import Words
from nurture.rules.sequence import Sequence
from nurture.rules.tokens import BadToken
from nurture.store import consent as consent_store
from nurture.store import contacts as store
from nurture.store.models import Consent, ConsentAction, Contact, Subscription

if TYPE_CHECKING:  # the runtime is handed in; importing it would run an arrow back up
    from nurture.runtime import Runtime

log = logging.getLogger(__name__)

EXPIRED_FORM = Words("This form had expired. Please check your details and send it again.")


class SignupUnavailable(RuntimeError):
    """A sequence the form needs is not loaded (removed, or its file has errors): nothing was saved."""


class UnknownSignup(LookupError):
    """No sign-up is waiting for this confirmation: the contact is gone, or the sign-up expired."""


@dataclass(frozen=True)
class Visitor:
    """Who sent the form or clicked the link, for the consent record."""

    ip: str | None = None
    user_agent: str | None = None

    def origin(self, form_id: str, consent_text: str | None) -> Origin:
        return Origin(method="form", ip=self.ip, user_agent=self.user_agent, consent_text=consent_text,
                      form_id=form_id)


@dataclass(frozen=True)
class SignupResult:
    contact_id: int
    created: bool
    status: Subscription  # PENDING (a confirmation is on its way) or SUBSCRIBED


@dataclass(frozen=True)
class ConfirmResult:
    contact_id: int
    confirmed: bool  # False when it had been confirmed already (a second click changes nothing)
    form: Form | None = None
    lead_magnet_url: str | None = None
    locale: str | None = None  # the contact's language: the page is shown in it


def screen(rt: Runtime, form: Form, posted: Mapping[str, object],
           query: Mapping[str, str] | None = None) -> Submission | None:
    """The clean submission, or None for a bot: the honeypot was filled in, or the form came back sooner
    than FORM_MIN_FILL_SECONDS after it was handed out. Raises InvalidSignup for a person's mistakes.

    A missing or altered timestamp is a mistake, not a bot: a page open across a SECRET_KEY change, or a
    snippet copied with its hidden fields dropped. The form comes back with a fresh one, and the fill time
    counts from there.
    """
    if posted.get(HONEYPOT) not in (None, ""):
        return None
    issued = _issued(rt, form, posted.get(STARTED))
    if issued is not None and rt.clock() - issued < timedelta(seconds=rt.settings.form_min_fill_seconds):
        return None
    try:
        submission = read_submission(form, posted, query)
    except InvalidSignup as exc:
        errors = exc.errors
    else:
        if issued is not None:
            return submission
        errors = {}
    if issued is None:
        errors.setdefault(FORM_ERROR, EXPIRED_FORM)
    raise InvalidSignup(errors)


def _issued(rt: Runtime, form: Form, token: object) -> datetime | None:
    if not isinstance(token, str) or not token:
        return None
    try:
        return rt.signer.form_issued(token, form.id)
    except BadToken:
        return None


def _needed_sequence(rt: Runtime, form: Form) -> Sequence:
    sequence_id = form.confirm_sequence if form.double_opt_in else form.sequence
    sequence = rt.sequences.get(sequence_id)
    if sequence is None:
        log.error("form %s: sequence %r is not loaded; sign-ups refused until it is", form.id, sequence_id)
        raise SignupUnavailable(sequence_id)
    return sequence


def submit(rt: Runtime, form: Form, submission: Submission, visitor: Visitor) -> SignupResult:
    """Record one sign-up, all or nothing. A second submission of the same address updates the same contact.
    Raises contacts.ErasedAddress, recording nothing, for the address of a person erased at their request."""
    sequence = _needed_sequence(rt, form)
    now = rt.clock()
    origins = (visitor.origin(form.id, form.consent_text), visitor.origin(form.id, form.sms_consent_text))
    magnet = None if form.double_opt_in or form.lead_magnet is None else _magnet_field(rt, form)
    contact_id = new_signup.create(rt.db, form, submission, origins, sequence, magnet, now)
    # None for a known address, or an erased one (then _find_or_create raises ErasedAddress).
    if contact_id is not None:  # a new address, the common case: written in one statement (PostgreSQL)
        return SignupResult(contact_id, True, Subscription.PENDING if form.double_opt_in else Subscription.SUBSCRIBED)
    for attempt in (1, 2):
        with Session(rt.db) as session:
            try:
                result = _merge(rt, session, form, submission, visitor, sequence, now)
                session.commit()
                return result
            except IntegrityError:
                # Two submissions of a new address at once: the other one created the contact. Once more,
                # and this one finds it.
                session.rollback()
                if attempt == 2:
                    raise
            except DBAPIError as exc:
                # The database restarted under a pooled connection (no ping at every checkout: store.db):
                # the transaction is gone whole; once more on a new connection.
                if not exc.connection_invalidated or attempt == 2:
                    raise
    raise AssertionError("unreachable")


def _magnet_field(rt: Runtime, form: Form) -> Callable[[int], dict]:
    """`contact.fields.lead_magnet` for a contact id, where the welcome email finds it (see _start)."""
    assert form.lead_magnet is not None
    title = form.lead_magnet.title
    return lambda contact_id: {"title": title, "url": lead_magnet_url(rt, form, contact_id)}


def _merge(rt: Runtime, session: Session, form: Form, submission: Submission, visitor: Visitor,
           sequence: Sequence, now: datetime) -> SignupResult:
    """The general path: a known address signs up again (merged, never duplicated). It also creates a
    contact that is not there: `new_signup` is the short way for that, writing the same rows."""
    contact, created = _find_or_create(session, form, submission, now)
    record_consent(session, contact, "email", ConsentAction.OPT_IN, visitor.origin(form.id, form.consent_text), now)
    if submission.sms_consent:  # its own consent, with its own words (texts still wait for a sequence)
        set_sms(session, contact, True, visitor.origin(form.id, form.sms_consent_text), now)
    record_event(session, contact.id, "signup.submitted", now,
                 {"form": form.id, "double_opt_in": form.double_opt_in, "attribution": submission.attribution})
    if form.double_opt_in:
        if contact.email_status != Subscription.SUBSCRIBED:
            contact.email_status = Subscription.PENDING  # no marketing until the link is clicked
        contact.pending_form, contact.pending_since = form.id, now
        _send_confirmation(session, contact, sequence, now)
        return SignupResult(contact.id, created, Subscription.PENDING)
    contact.email_status, contact.pending_form, contact.pending_since = Subscription.SUBSCRIBED, None, None
    _start(rt, session, contact, form, sequence, now)
    return SignupResult(contact.id, created, Subscription.SUBSCRIBED)


def _find_or_create(session: Session, form: Form, submission: Submission, now: datetime) -> tuple[Contact, bool]:
    contact = store.by_email(session, submission.email)
    if contact is not None:
        _fill_gaps(session, contact, form, submission, now)
        return contact, False
    check_not_erased(session, submission.email)  # raises ErasedAddress: nothing of it is kept
    attribution = {**submission.attribution, "form": form.id}
    contact = Contact(
        email=submission.email, first_name=submission.first_name, last_name=submission.last_name,
        phone=submission.phone, timezone=submission.timezone, locale=submission.locale,
        fields=dict(submission.fields), tags=list(form.tags), email_status=Subscription.PENDING,
        attribution=attribution,
        source=(submission.attribution.get("source") or f"form:{form.id}")[:200], created_at=now, updated_at=now,
    )
    session.add(contact)
    session.flush()
    record_event(session, contact.id, "contact.created", now,
                 {"source": contact.source, "form": form.id, "attribution": attribution})
    return contact, True


def _fill_gaps(session: Session, contact: Contact, form: Form, submission: Submission, now: datetime) -> None:
    """A known contact signs up again: merged by the one rule (contacts.merge_into), plus the first
    attribution when it had none."""
    offered = ContactInput(email=submission.email, first_name=submission.first_name,
                           last_name=submission.last_name, phone=submission.phone, timezone=submission.timezone,
                           fields=dict(submission.fields), tags=tuple(form.tags), locale=submission.locale)
    merge = merge_into(contact, offered)
    if not contact.attribution and submission.attribution:
        contact.attribution = {**submission.attribution, "form": form.id}
        merge.filled["attribution"] = contact.attribution
    record_merge(session, contact, merge, now, f"form:{form.id}")


def _send_confirmation(session: Session, contact: Contact, sequence: Sequence, now: datetime) -> None:
    """Enroll in the confirmation sequence. Its `reentry: after 10m` sends a new confirmation to someone
    who signs up again later, and never floods a stranger's inbox with a burst of them."""
    enroll(session, contact, sequence, now)


def lead_magnet_url(rt: Runtime, form: Form, contact_id: int) -> str | None:
    magnet = form.lead_magnet
    if magnet is None:
        return None
    if magnet.url:
        return magnet.url
    token = rt.signer.lead_magnet_token(contact_id, form.id)
    return f"{rt.settings.base_url}/forms/{form.id}/download/{token}"


def _start(rt: Runtime, session: Session, contact: Contact, form: Form, sequence: Sequence | None,
           now: datetime) -> str | None:
    """Start the form's sequence. The lead magnet goes into contact.fields, where its welcome email finds
    it (`contact.fields.lead_magnet.url`). Returns the lead magnet's URL."""
    url = lead_magnet_url(rt, form, contact.id)
    if url and form.lead_magnet is not None:
        contact.fields = {**contact.fields, "lead_magnet": {"title": form.lead_magnet.title, "url": url}}
        session.flush()
    if sequence is None:
        log.error("form %s: sequence %r is not loaded; %s confirmed but not enrolled", form.id, form.sequence,
                  contact.email)
        return url
    enroll(session, contact, sequence, now)
    return url


@dataclass(frozen=True)
class Waiting:
    email: str
    confirmed: bool  # the link was clicked already: nothing waits, nothing more to do
    locale: str | None = None  # the contact's language: the page is shown in it


def waiting(rt: Runtime, contact_id: int) -> Waiting:
    """What a confirmation link points at, before anyone confirms (the GET page only shows a button: mail
    scanners fetch links). Raises UnknownSignup when nothing waits: the contact is gone or it lapsed."""
    with Session(rt.db) as session:
        contact = session.get(Contact, contact_id)
        if contact is None or (contact.pending_form is None and contact.email_status != Subscription.SUBSCRIBED):
            raise UnknownSignup(contact_id)
        return Waiting(contact.email, confirmed=contact.pending_form is None, locale=contact.locale)


def confirm(rt: Runtime, forms: FormRegistry, contact_id: int, visitor: Visitor) -> ConfirmResult:
    """Confirm the sign-up waiting for `contact_id`. Raises UnknownSignup when none is (gone, expired)."""
    now = rt.clock()
    with Session(rt.db, expire_on_commit=False) as session:
        contact = session.get(Contact, contact_id)
        if contact is None:
            raise UnknownSignup(contact_id)
        form_id = contact.pending_form
        if form_id is None or not store.take_pending(session, contact_id, form_id, now):
            if contact.email_status == Subscription.SUBSCRIBED:
                # clicked twice: already done
                return ConfirmResult(contact_id, confirmed=False, locale=contact.locale)
            raise UnknownSignup(contact_id)
        session.refresh(contact)
        form = forms.get(form_id)
        text = consent_store.opt_in_text(session, contact_id, form_id) or (form.consent_text if form else None)
        record_consent(session, contact, "email", ConsentAction.CONFIRM, visitor.origin(form_id, text), now)
        record_event(session, contact_id, "email.confirmed", now, {"form": form_id})
        url = _start(rt, session, contact, form, rt.sequences.get(form.sequence), now) if form else None
        referrals.credit(session, rt, contact, now)  # a friend's sign-up through /r/<code>, confirmed
        automation.trigger(session, rt, contact, "form", form_id, now)
        session.commit()
        return ConfirmResult(contact_id, confirmed=True, form=form, lead_magnet_url=url,
                             locale=contact.locale)


def expire_pending(rt: Runtime, limit: int = 500) -> int:
    """Let sign-ups not confirmed within SIGNUP_EXPIRY_HOURS lapse: a pending contact becomes "expired" (it
    was never opted in; its records stay as evidence). Returns how many lapsed. Safe to run twice."""
    now = rt.clock()
    cutoff = now - timedelta(hours=rt.settings.signup_expiry_hours)
    with Session(rt.db) as session:
        expired = 0
        for contact_id, form_id in store.pending_since_before(session, cutoff, limit):
            if store.lapse_pending(session, contact_id, cutoff, now):
                record_event(session, contact_id, "signup.expired", now, {"form": form_id})
                expired += 1
        session.commit()
    return expired


def consent_json(record: Consent) -> dict:
    """One consent record as plain data (the API's contact JSON, `nurture contacts consent --json`)."""
    return {
        "at": record.created_at.isoformat(), "channel": record.channel, "action": record.action,
        "method": record.method, "scope": record.scope, "form": record.form_id, "message": record.delivery_id,
        "consent_text": record.consent_text, "consent_sha256": record.consent_hash, "ip": record.ip,
        "user_agent": record.user_agent, "legal_basis": record.legal_basis,
    }
