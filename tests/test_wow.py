"""The Wow stage: one-click feedback ratings, promoters asked for referrals, detractors flagged to the owner,
referral links credited to the referrer who is then rewarded, upsells by what was bought, win-back."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner
from sqlmodel import Session, select

from nurture.people import referrals
from nurture.runtime import Runtime
from nurture.store.models import Contact, Event
from nurture.web import create_app
from tests.conftest import SmtpServer, worker_env
from tests.helpers import add_contact, deliveries, send_due

AUTH = {"Authorization": "Bearer test-api-key-0123456789"}


@pytest.fixture
def rt(make_runtime, database_url, smtp_server: SmtpServer, project) -> Runtime:  # noqa: ANN001
    (project / "sequences" / "_lifecycle.yaml").write_text(
        "alerts: {sales: sales@juniper.example, owner: owner@juniper.example}\n")  # no caps in these stories
    return make_runtime(database_url, EMAIL_BACKEND="smtp", SMTP_URL=smtp_server.url)


@pytest.fixture
def client(rt: Runtime):  # noqa: ANN201
    return create_app(rt).test_client()


def buy(client, email: str, product: str, key: str) -> None:  # noqa: ANN001
    response = client.post("/api/events", headers=AUTH, json={
        "email": email, "type": "purchase", "properties": {"product": product}, "idempotency_key": key})
    assert response.status_code == 201, response.json


def run_days(rt: Runtime, clock, days: int) -> None:  # noqa: ANN001
    for _ in range(days):
        send_due(rt)
        clock.advance(days=1)
    send_due(rt)


def rating_link(smtp_server: SmtpServer, email: str, score: int) -> str:
    feedback = [r for r in smtp_server.handler.to(email) if "How was your first class" in r.message["Subject"]][0]
    html = feedback.message.get_body(("html",)).get_content()
    links = re.findall(r'href="(https://nurture\.test/feedback/[^"]+)"', html)
    assert len(links) == 11  # 0..10, one click each
    return [u for u in links if u.endswith(f"score={score}")][0]


def subjects(smtp_server: SmtpServer, email: str) -> list[str]:
    return [r.message["Subject"] for r in smtp_server.handler.to(email)]


def test_a_promoter_is_asked_for_a_referral_and_a_detractor_alerts_the_owner(rt, client, smtp_server,
                                                                           clock) -> None:
    for email in ("happy@example.com", "sad@example.com"):
        add_contact(rt, email, first_name=email.split("@")[0].title())
        buy(client, email, "wheel-6-week", f"order-{email}")
    run_days(rt, clock, 4)  # thank-you, then the feedback email with its 11 rating links
    clock.advance(hours=2)  # a person, not a link scanner
    browser = {"User-Agent": "Mozilla/5.0 (iPhone)"}
    happy = client.get(urlsplit(rating_link(smtp_server, "happy@example.com", 10)).path + "?score=10",
                       headers=browser)
    assert happy.status_code == 200 and "you gave us 10/10" in happy.get_data(as_text=True)
    sad_link = urlsplit(rating_link(smtp_server, "sad@example.com", 3))
    assert client.get(f"{sad_link.path}?{sad_link.query}", headers=browser).status_code == 200
    client.post(sad_link.path, data={"score": "3", "comment": "The wheel was broken and nobody helped."},
                headers=browser)
    run_days(rt, clock, 30)

    assert any("Bring a friend" in s for s in subjects(smtp_server, "happy@example.com"))
    assert not any("Bring a friend" in s for s in subjects(smtp_server, "sad@example.com"))
    [alert] = smtp_server.handler.to("owner@juniper.example")
    assert alert.message["Subject"] == "Sad rated us 3/10"
    assert "The wheel was broken and nobody helped." in alert.message.get_body(("plain",)).get_content()
    with Session(rt.db) as session:
        ratings = session.exec(select(Event).where(Event.type == "rating").order_by(Event.id)).all()
    assert [(r.data["score"], r.data["category"]) for r in ratings] == [(10, "promoter"), (3, "detractor")]


def test_a_link_scanner_fetching_every_rating_link_counts_for_nothing(rt, client, smtp_server, clock) -> None:
    add_contact(rt, "ann@example.com")
    buy(client, "ann@example.com", "wheel-6-week", "order-1")
    run_days(rt, clock, 4)
    for score in range(11):  # a security gateway fetches all of them as the email arrives
        link = urlsplit(rating_link(smtp_server, "ann@example.com", score))
        client.get(f"{link.path}?{link.query}", headers={"User-Agent": "Mozilla/5.0 Proofpoint"})
    run_days(rt, clock, 30)
    assert not any("Bring a friend" in s for s in subjects(smtp_server, "ann@example.com"))
    assert smtp_server.handler.to("owner@juniper.example") == []


def test_a_bad_rating_link_gets_a_friendly_error(rt, client) -> None:
    assert client.get("/feedback/forged?score=10").status_code == 400
    token = rt.signer.feedback_token(12345)
    assert client.get(f"/feedback/{token}?score=11").status_code == 400
    assert client.get(f"/feedback/{token}?score=10").status_code == 404  # a delivery that does not exist


def test_a_friend_signing_up_through_a_referral_link_credits_the_referrer_who_gets_the_reward(
        rt, client, smtp_server, clock, project, database_url, monkeypatch) -> None:
    referrer_id = add_contact(rt, "maya@example.com", first_name="Maya")
    code = rt.signer.referral_code(referrer_id)
    response = client.get(f"/r/{code}")
    assert response.status_code == 302
    landing = urlsplit(response.headers["Location"])
    assert landing.path == "/forms/beginners-guide" and parse_qs(landing.query)["ref"] == [code]
    assert client.get("/r/zzzzzzzzzz").headers["Location"] == "https://nurture.test/forms/beginners-guide"

    friend_id = add_contact(rt, "friend@example.com")
    with Session(rt.db) as session:
        friend = session.get(Contact, friend_id)
        friend.attribution = {"ref": code}
        assert referrals.credit(session, rt, friend, clock()).id == referrer_id
        assert referrals.credit(session, rt, friend, clock()) is None  # credited once
        session.commit()
    send_due(rt)
    assert subjects(smtp_server, "maya@example.com") == ["Your friend joined: a free glaze session is yours"]
    with Session(rt.db) as session:
        assert session.get(Contact, referrer_id).stage == "advocate"
    for name, value in worker_env(project, database_url).items():
        monkeypatch.setenv(name, value)
    from nurture.cli import main

    listed = CliRunner().invoke(main, ["referrals"]).output
    assert listed.split()[:2] == ["1", "maya@example.com"] and f"/r/{code}" in listed


def test_a_referral_code_cannot_be_walked_to_another_contact(rt) -> None:
    code = rt.signer.referral_code(41)
    assert rt.signer.referrer(code) == 41 and rt.signer.referrer(code.upper()) == 41
    assert rt.signer.referrer("1b" + code[2:]) is None
    assert rt.signer.referrer(code[:-1] + ("0" if code[-1] != "0" else "1")) is None


def test_the_upsell_is_chosen_by_what_was_bought_and_never_for_what_they_own(rt, client, smtp_server,
                                                                           clock) -> None:
    add_contact(rt, "course@example.com")
    buy(client, "course@example.com", "wheel-6-week", "o1")
    add_contact(rt, "taster@example.com")
    buy(client, "taster@example.com", "taster-class", "o2")
    add_contact(rt, "both@example.com")
    buy(client, "both@example.com", "wheel-6-week", "o3")
    client.post("/api/events", headers=AUTH, json={"email": "both@example.com", "type": "purchase",
                                                   "properties": {"product": "glaze-kit"}})
    run_days(rt, clock, 40)
    assert subjects(smtp_server, "course@example.com")[-1] == "Keep glazing at home, friend"
    assert subjects(smtp_server, "taster@example.com")[-1] == "Ready for the wheel, friend?"
    assert [d.step_id for d in deliveries(rt, "both@example.com")] == ["thank-you", "feedback"]
    with Session(rt.db) as session:
        skipped = [e.data for e in session.exec(select(Event).where(Event.type == "step.skipped"))
                   if e.data["step"] == "upsell"]
    assert [s["reason"] for s in skipped] == ["no offer fits (bought: glaze-kit, wheel-6-week)"]


def test_a_contact_who_went_quiet_gets_the_win_back_once(rt, client, smtp_server, clock) -> None:
    add_contact(rt, "quiet@example.com")
    add_contact(rt, "busy@example.com")
    clock.advance(days=80)
    buy(client, "busy@example.com", "glaze-kit", "o1")  # engaged recently
    clock.advance(days=11)  # 91 days since sign-up; a Monday-ish morning is not guaranteed, so
    clock.now = clock.now.replace(hour=10)  # make sure the win-back window (09:00-18:00) is open
    while clock.now.weekday() >= 5:
        clock.advance(days=1)
    send_due(rt)
    send_due(rt)
    assert "We've missed you at the studio, friend" in subjects(smtp_server, "quiet@example.com")
    assert not any("missed you" in s for s in subjects(smtp_server, "busy@example.com"))
    clock.advance(days=30)
    send_due(rt)
    assert subjects(smtp_server, "quiet@example.com").count("We've missed you at the studio, friend") == 1
    clock.advance(days=154)  # past the policy's 180 days, still quiet: one more nudge
    while clock.now.weekday() >= 5:
        clock.advance(days=1)
    send_due(rt)
    send_due(rt)
    assert subjects(smtp_server, "quiet@example.com").count("We've missed you at the studio, friend") == 2


def test_a_friend_who_signs_up_on_the_form_through_the_link_is_credited_once_confirmed(
        make_runtime, database_url, smtp_server, project, clock) -> None:
    import shutil

    from tests.conftest import CONTENT
    from tests.test_signup import confirm_path, post

    shutil.copytree(CONTENT / "forms", project / "forms")
    rt = make_runtime(database_url, EMAIL_BACKEND="smtp", SMTP_URL=smtp_server.url)
    client = create_app(rt).test_client()
    referrer_id = add_contact(rt, "maya@example.com", first_name="Maya")
    landing = urlsplit(client.get(f"/r/{rt.signer.referral_code(referrer_id)}").headers["Location"])
    response = post(client, rt, clock, query=f"?{landing.query}", email="friend@example.com", first_name="Jo",
                    consent="on")
    assert response.status_code in (200, 303), response.get_data(as_text=True)
    send_due(rt)
    assert subjects(smtp_server, "maya@example.com") == []  # not before the friend confirms
    path = confirm_path(smtp_server, "friend@example.com")
    assert client.post(path, headers={"User-Agent": "Mozilla/5.0"}).status_code == 200
    send_due(rt)
    assert subjects(smtp_server, "maya@example.com") == ["Your friend joined: a free glaze session is yours"]
    with Session(rt.db) as session:
        [referred] = session.exec(select(Event).where(Event.type == "referred")).all()
    assert referred.data["by"] == referrer_id
