"""The send path's email, byte for byte the email main built before its message side was made cheaper
(tests/message_reference.py: the same headers, QP, tokens, tracked links, List-Unsubscribe), for every
email step of the fixture sequences, contacts with plain, quoted, non-ASCII and empty names, in more than
one language, with tracking on and off and Postmark's metadata header."""

from __future__ import annotations

from datetime import timedelta

import pytest
from itsdangerous.timed import TimestampSigner

from nurture.delivery.channels.email import compose_email
from nurture.store.models import Contact
from tests.message_reference import boundary_of, reference_email

PEOPLE = [
    ("Ann", "Lee", "ann@example.com", None, {"class_name": "Wheel throwing"}),
    ("Zoë", "Müller", "zoe.m+x@example.org", "fr", {"class_name": "Glaze = 1 ", "plan": "é" * 90}),
    ('Bo "B."', "O'Hara, Jr.", "bo@example.net", "pt-BR", {}),
    ("", "", "nobody@example.com", None, {"class_name": ".leading dot\nand a line"}),
    ("Jae", "Kim <x@y>", "jae@example.com", "de", {"class_name": "x" * 300}),
]


@pytest.mark.parametrize("settings", [
    {},
    {"TRACK_CLICKS": "true", "TRACK_OPENS": "true"},
    {"TRACK_CLICKS": "true", "POSTMARK_WEBHOOK_USER": "pm", "POSTMARK_WEBHOOK_PASSWORD": "a-password-of-16+"},
])
def test_every_email_is_byte_for_byte_the_one_main_built(make_runtime, sqlite_url, clock, settings,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # The confirmation link's token is timestamped by itsdangerous from the wall clock: held still.
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: 1_795_000_000)
    rt = make_runtime(sqlite_url, **settings)
    checked = 0
    for number, (first, last, email, locale, fields) in enumerate(PEOPLE):
        now = clock() + timedelta(seconds=number * 7919)
        contact = Contact(id=1000 + number * 37, email=email, first_name=first, last_name=last, locale=locale,
                          fields=fields, created_at=now, updated_at=now)
        for sequence in rt.sequences.all():
            for step in sequence.steps:
                if step.channel != "email" or not step.template:
                    continue
                delivery_id = 7 + number * 100003 + checked
                built = compose_email(rt, contact, sequence, step, delivery_id, now)
                data, envelope_from, locale_used = reference_email(rt, contact, sequence, step, delivery_id, now)
                assert built.data.replace(boundary_of(built.data), b"BOUNDARY") == data, (step.template, first)
                assert (built.envelope_from, built.recipient, built.locale) == (envelope_from, email, locale_used)
                assert (b"\r\nX-PM-Metadata-" in data) == ("POSTMARK_WEBHOOK_USER" in settings)
                checked += 1
    assert checked >= 25
