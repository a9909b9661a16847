"""What an owner does to one contact by hand — from the console, the CLI or the API: add to a sequence,
pause / resume / end an enrollment, add or remove a tag, set the language, unsubscribe.

Every action is recorded on the contact's timeline with who did it (`Actor`), and changes only through
conditional UPDATEs (store.contacts), so an action that raced the worker or a second click does nothing
twice. Refusals are `ActionRefused`, a domain error whose message the console shows as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlmodel import Session

from nurture.people import automation
from nurture.people.contacts import MAX_TAG, check_text, enroll, record_event
from nurture.people.preferences import Origin, set_sms, unsubscribe_all
from nurture.rules.locales import InvalidLocale, optional_locale
from nurture.store import contacts as store
from nurture.store.models import Contact, Enrollment, EnrollmentStatus, Subscription

if TYPE_CHECKING:  # handed in by the caller; importing it would run an arrow back up
    from nurture.runtime import Runtime


class ActionRefused(ValueError):
    """The action cannot be done as asked; the message says why, in words for the owner."""


@dataclass(frozen=True)
class Actor:
    """Who did it: `who` is a console account's email, or "cli" / "api"; `via` is console | cli | api
    (the consent record's method)."""

    who: str
    via: str

    def stamp(self, data: dict | None = None) -> dict:
        return {**(data or {}), "by": self.who, "via": self.via}


def add_to_sequence(session: Session, rt: Runtime, contact: Contact, sequence_id: str, actor: Actor,
                    now: datetime) -> Enrollment:
    """Enroll the contact in `sequence_id` at its first step. Refused for an unknown sequence, or one the
    contact is in already (or may not enter again: its re-entry policy)."""
    sequence = rt.sequences.get(sequence_id)
    if sequence is None:
        raise ActionRefused(f"there is no sequence {sequence_id!r}")
    enrollment, created = enroll(session, contact, sequence, now, by=actor.who)
    if not created:
        raise ActionRefused(f"already in {sequence_id} ({enrollment.status}); its re-entry policy allows no "
                            "second run now")
    return enrollment


def pause(session: Session, contact: Contact, enrollment_id: int, actor: Actor, now: datetime) -> None:
    enrollment = _enrollment_of(session, contact, enrollment_id)
    if not store.pause_enrollment(session, enrollment.id, f"paused by {actor.who}", now):
        session.refresh(enrollment)
        if enrollment.status == EnrollmentStatus.ACTIVE:
            raise ActionRefused("a message of it is being sent this moment: try again in a minute")
        raise ActionRefused(f"it is not running ({enrollment.status})")
    _record(session, contact, "enrollment.paused", enrollment, actor, now)


def resume(session: Session, contact: Contact, enrollment_id: int, actor: Actor, now: datetime) -> None:
    enrollment = _enrollment_of(session, contact, enrollment_id)
    if not store.resume_enrollment(session, enrollment.id, now):
        raise ActionRefused(f"it is not paused ({enrollment.status})")
    _record(session, contact, "enrollment.resumed", enrollment, actor, now)


def end(session: Session, contact: Contact, enrollment_id: int, actor: Actor, now: datetime) -> None:
    enrollment = _enrollment_of(session, contact, enrollment_id)
    if not store.end_enrollment(session, enrollment.id, f"ended by {actor.who}", now):
        raise ActionRefused(f"it had ended already ({enrollment.status})")
    _record(session, contact, "enrollment.ended", enrollment, actor, now)


def add_tag(session: Session, rt: Runtime, contact: Contact, raw: str, actor: Actor, now: datetime) -> str:
    """Tag the contact, and start the sequences that a tag starts (as an API or form tag would)."""
    tag = check_text(raw, "tag", MAX_TAG)
    if not tag:
        raise ActionRefused("a tag needs some text")
    if tag in contact.tags:
        raise ActionRefused(f"already tagged {tag!r}")
    contact.tags, contact.updated_at = [*contact.tags, tag], now
    record_event(session, contact.id, "tag.added", now, actor.stamp({"tag": tag}))
    automation.trigger(session, rt, contact, "tag", tag, now)
    return tag


def remove_tag(session: Session, contact: Contact, tag: str, actor: Actor, now: datetime) -> None:
    if tag not in contact.tags:
        raise ActionRefused(f"not tagged {tag!r}")
    contact.tags, contact.updated_at = [t for t in contact.tags if t != tag], now
    record_event(session, contact.id, "tag.removed", now, actor.stamp({"tag": tag}))


def set_locale(session: Session, contact: Contact, raw: str, actor: Actor, now: datetime) -> str | None:
    """Set the language the contact's messages and pages come in (empty: DEFAULT_LOCALE). Returns the tag
    as stored (`fr-CA` -> `fr_CA`)."""
    try:
        locale = optional_locale(raw)
    except InvalidLocale as exc:
        raise ActionRefused(str(exc)) from None
    if locale == contact.locale:
        raise ActionRefused(f"the language is {locale or 'the default'} already")
    record_event(session, contact.id, "contact.locale_set", now, actor.stamp({"from": contact.locale, "to": locale}))
    contact.locale, contact.updated_at = locale, now
    return locale


def unsubscribe(session: Session, contact: Contact, channel: str, actor: Actor, now: datetime) -> None:
    """Opt the contact out of marketing on `channel` (email or sms) on their behalf — a reply asking for
    it, a phone call — with a consent record (method: the actor's `via`) and the owner on the timeline."""
    origin = Origin(method=actor.via, by=actor.who)
    if channel == "email":
        changed = unsubscribe_all(session, contact, origin, now)
    elif channel == "sms":
        changed = contact.sms_status == Subscription.SUBSCRIBED and set_sms(session, contact, False, origin, now)
    else:
        raise ActionRefused(f"no channel {channel!r} (email or sms)")
    if not changed:
        raise ActionRefused(f"not subscribed to {channel} marketing now")
    session.refresh(contact)


def _enrollment_of(session: Session, contact: Contact, enrollment_id: int) -> Enrollment:
    enrollment = session.get(Enrollment, enrollment_id)
    if enrollment is None or enrollment.contact_id != contact.id:
        raise ActionRefused("no such enrollment for this contact")
    return enrollment


def _record(session: Session, contact: Contact, type_: str, enrollment: Enrollment, actor: Actor,
            now: datetime) -> None:
    record_event(session, contact.id, type_, now, actor.stamp({"sequence": enrollment.sequence_id,
                                                               "step": enrollment.step_id,
                                                               "entry": enrollment.entry}))


def record_export(session: Session, contact: Contact, actor: Actor, now: datetime) -> None:
    """A copy of the person's data left the system (an access request): who took it, and when."""
    record_event(session, contact.id, "contact.exported", now, actor.stamp())


def actions_of(session: Session, contact: Contact) -> list[tuple[datetime, str, dict]]:
    """What people did to the contact by hand, newest first: (when, event type, data with `by`)."""
    return [(e.occurred_at, e.type, e.data) for e in reversed(store.events_of(session, contact.id))
            if isinstance(e.data, dict) and "by" in e.data]
