"""What one contact's console page shows, gathered in one session: the `nurture why` story (each
sequence entered: sent, skipped, deferred and why; what comes next), the enrollments the action buttons
act on, the consent record, and what owners did by hand."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlmodel import Session

from nurture.delivery.deliverability import current_backoffs
from nurture.insight import why
from nurture.people import erasure, owner_actions, segments
from nurture.people.preferences import consent_history
from nurture.rules import engine
from nurture.store import contacts as store
from nurture.store.models import Contact

if TYPE_CHECKING:
    from nurture.runtime import Runtime

ACTION_WORDS = {"enrollment.paused": "paused", "enrollment.resumed": "resumed", "enrollment.ended": "ended",
                "tag.added": "tagged", "tag.removed": "untagged", "sequence.enrolled": "added to",
                "email.unsubscribed": "unsubscribed (email)", "sms.unsubscribed": "unsubscribed (texts)",
                "contact.exported": "exported the data", "contact.erased": "erased the person",
                "contact.locale_set": "changed the language"}


def contact_page_data(session: Session, rt: Runtime, contact: Contact) -> dict[str, Any]:
    erased = erasure.is_erased_contact(contact)
    now = rt.clock()
    story = None if erased else why.story_of(session, contact, rt.sequences, now, rt.settings.sms,
                                             current_backoffs(rt, now))
    enrollments = {(e.sequence_id, e.entry): e for e in store.enrollments_of(session, contact.id)}
    runs = [(run, enrollments.get((run.sequence_id, run.entry))) for run in story.runs] if story else []
    return {
        "erased": erased,
        "story": story,
        "runs": runs,
        "consent": consent_history(session, contact.id),
        "actions": [(at, ACTION_WORDS.get(type_, type_), data) for at, type_, data in
                    owner_actions.actions_of(session, contact)],
        "zone": engine.contact_zone(contact.timezone),
        "addable": sorted(s.id for s in rt.sequences.all() if not s.transactional),
        "name": f"{contact.first_name} {contact.last_name}".strip(),
        "segments": [] if erased else segments.of_contact(session, rt, contact.id or 0),
    }
