"""How `nurture contacts show` and `contacts consent` print a contact's records: one time format (UTC, to
the second) and `key=value` data, never a Python dict — the owner reads these, and greps them."""

from __future__ import annotations

from datetime import datetime

from nurture.store.models import Consent, Contact, Delivery, Event


def when(at: datetime) -> str:
    """Every time the contact commands print, in one format. Stored times are UTC; the header says so."""
    return f"{at:%Y-%m-%d %H:%M:%S}"


def header(contact: Contact) -> str:
    name = f"{contact.first_name} {contact.last_name}".strip()
    return "  ".join(part for part in (contact.email, name, f"stage={contact.stage}",
                                       f"email={contact.email_status}", f"sms={contact.sms_status}",
                                       "(times in UTC)") if part)


def data_text(data: dict, prefix: str = "") -> str:
    """`source=form:guide attribution.utm_source=fb`: nested keys dotted, empty values left out, a value
    with spaces quoted."""
    parts = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            parts.append(data_text(value, f"{name}."))
        elif value not in (None, "", [], ()):
            parts.append(f"{name}={_value(value)}")
    return " ".join(p for p in parts if p)


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    text = str(value)
    return f'"{text}"' if any(c.isspace() for c in text) else text


def delivery_line(d: Delivery) -> str:
    """When it was sent (or last changed, when it was not), which step, its channel and outcome."""
    error = f"  {d.error}" if d.error else ""
    return f"  {when(d.sent_at or d.updated_at)}  {d.sequence_id}/{d.step_id}  {d.channel} {d.status}" \
           f"  (delivery {d.id}){error}"


def event_line(e: Event) -> str:
    return f"  {when(e.occurred_at)}  {e.type}  {data_text(e.data)}".rstrip()


def consent_via(method: str, form_id: str | None, delivery_id: int | None) -> str:
    """`via form beginners-guide`, `via one-click, message 12`, `via cli`: the method, then what it came
    from, the form named once."""
    if form_id:
        return f"via form {form_id}" if method == "form" else f"via {method}, form {form_id}"
    return f"via {method}, message {delivery_id}" if delivery_id else f"via {method}"


def consent_line(c: Consent) -> str:
    via = consent_via(c.method, c.form_id, c.delivery_id) + (f", basis {c.legal_basis}" if c.legal_basis else "")
    text = f"  text#{c.consent_hash[:12]}" if c.consent_hash else ""
    return (f"  {when(c.created_at)}  {c.channel} {c.action} ({c.scope}) {via}"
            f"  ip={c.ip or '-'}  ua={c.user_agent or '-'}{text}")
