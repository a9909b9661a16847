"""The signup form's own SMS opt-in: an unticked checkbox with its own words, recorded like email consent."""

from __future__ import annotations

import re

from sqlmodel import Session, select

from nurture.models import Consent, Contact
from tests.test_signup import JSON, client, post, project_with_forms, rt  # noqa: F401  (fixtures)

SMS_WORDS = "Also text me class reminders"


def contact(rt) -> Contact:  # noqa: ANN001
    with Session(rt.db) as session:
        return session.exec(select(Contact)).one()


def consent_rows(rt) -> list[tuple[str, str, str | None]]:  # noqa: ANN001
    with Session(rt.db) as session:
        rows = session.exec(select(Consent).order_by(Consent.id)).all()
        return [(c.channel, c.action, c.consent_text) for c in rows]


def test_the_form_shows_an_unticked_sms_box_with_its_own_words(client) -> None:
    page = client.get("/forms/beginners-guide").get_data(as_text=True)
    assert re.search(r'<input type="checkbox" name="sms_consent" value="on">\s*' + SMS_WORDS, page)


def test_a_ticked_box_with_a_phone_records_sms_consent_with_its_words(client, rt, clock) -> None:
    response = post(client, rt, clock, email="ann@example.com", phone="(415) 555-2671", sms_consent="on")
    assert response.status_code == 303
    assert contact(rt).sms_status == "subscribed" and contact(rt).phone == "+14155552671"
    [(_, _, email_words), (channel, action, words)] = consent_rows(rt)
    assert (channel, action) == ("sms", "opt-in") and words.startswith(SMS_WORDS) and words != email_words


def test_no_tick_means_no_texts_even_with_a_phone(client, rt, clock) -> None:
    post(client, rt, clock, email="ann@example.com", phone="(415) 555-2671")
    assert contact(rt).sms_status == "none"
    assert [c for c, _, _ in consent_rows(rt)] == ["email"]


def test_a_ticked_box_without_a_phone_asks_for_one_and_saves_nothing(client, rt, clock) -> None:
    response = post(client, rt, clock, headers=JSON, email="ann@example.com", sms_consent="on")
    assert response.status_code == 400
    assert "mobile number" in response.json["errors"]["phone"]
    with Session(rt.db) as session:
        assert session.exec(select(Contact)).all() == []
