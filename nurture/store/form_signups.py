"""How each signup form is doing, counted from the consent records (nurture.people.signup writes an email
`opt-in` record naming the form for every sign-up, and a `confirm` record when the link is clicked)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, distinct, func, select
from sqlalchemy.orm import aliased
from sqlmodel import Session

from nurture.store.models import Consent, ConsentAction


@dataclass(frozen=True)
class FormCounts:
    signups: int  # contacts who signed up through the form in the period
    confirmed: int  # of those, contacts who clicked the confirmation link after signing up


def form_counts(session: Session, since: datetime) -> dict[str, FormCounts]:
    """Per form id, over the sign-ups made since `since`. Counted as a cohort — a confirmation counts for
    the sign-up it answers, so a link clicked today for last month's sign-up does not lift today's rate
    over 100%. Two grouped reads, whatever the number of sign-ups."""
    opt_in = [Consent.channel == "email", Consent.action == ConsentAction.OPT_IN, Consent.form_id.is_not(None),
              Consent.created_at >= since]
    signups = dict(session.execute(select(Consent.form_id, func.count(distinct(Consent.contact_id)))
                                   .where(*opt_in).group_by(Consent.form_id)).all())
    confirm = aliased(Consent)
    confirmed = dict(session.execute(
        select(Consent.form_id, func.count(distinct(Consent.contact_id)))
        .join(confirm, and_(confirm.contact_id == Consent.contact_id, confirm.form_id == Consent.form_id,
                            confirm.channel == "email", confirm.action == ConsentAction.CONFIRM,
                            confirm.created_at >= Consent.created_at))
        .where(*opt_in).group_by(Consent.form_id)).all())
    return {form_id: FormCounts(int(n), int(confirmed.get(form_id, 0))) for form_id, n in signups.items()}
