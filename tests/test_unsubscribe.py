"""Unsubscribe through links: one-click (RFC 8058) over real HTTP, the preference page, suppression at send
time, the suppression list, and DKIM covering the list headers."""

from __future__ import annotations

import http.client
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import dkim
import pytest
from click.testing import CliRunner
from sqlmodel import Session, select
from werkzeug.serving import make_server

from nurture.delivery import dispatch
from nurture.people import automation
from nurture.runtime import Runtime
from nurture.store.models import Consent, Contact, Enrollment, Suppression
from nurture.web import create_app
from tests.conftest import SmtpServer, worker_env
from tests.helpers import add_contact, deliveries, enrollment, send_due


@pytest.fixture
def rt(make_runtime, database_url, smtp_server: SmtpServer) -> Runtime:  # noqa: ANN001
    return make_runtime(database_url, EMAIL_BACKEND="smtp", SMTP_URL=smtp_server.url)


@pytest.fixture
def web(rt: Runtime) -> Iterator[str]:
    """The app served over real HTTP on a free port, as a mailbox provider reaches it."""
    server = make_server("127.0.0.1", 0, create_app(rt), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_port}"
    server.shutdown()


def unsubscribe_path(smtp_server: SmtpServer, address: str) -> str:
    """The path of the List-Unsubscribe URL in the last email `address` received."""
    header = smtp_server.handler.to(address)[-1].message["List-Unsubscribe"]
    return urlsplit(re.match(r"<([^>]+)>", header)[1]).path


def preferences_path(smtp_server: SmtpServer, address: str) -> str:
    """The path of the "manage preferences" link in the last email `address` received."""
    body = smtp_server.handler.to(address)[-1].message.get_body(("plain",)).get_content()
    return urlsplit(re.search(r"Manage your email preferences:\s+(\S+)", body)[1]).path


def raw_post(host: str, path: str, body: bytes, content_type: str) -> http.client.HTTPResponse:
    """A POST with nothing but what RFC 8058 says a provider sends: no cookie, no Origin, no Referer."""
    connection = http.client.HTTPConnection(host, timeout=10)
    connection.request("POST", path, body=body, headers={"Content-Type": content_type})
    response = connection.getresponse()
    response.body = response.read()  # type: ignore[attr-defined]
    return response


def contact(rt: Runtime, email: str) -> Contact:
    with Session(rt.db) as session:
        return session.exec(select(Contact).where(Contact.email == email)).one()


def consents(rt: Runtime) -> list[Consent]:
    with Session(rt.db) as session:
        return list(session.exec(select(Consent).order_by(Consent.id)))


def test_a_one_click_post_unsubscribes_with_200_no_redirect_no_cookie(rt, web, smtp_server) -> None:
    add_contact(rt, "ann@example.com", "lead-nurture")
    send_due(rt)
    path = unsubscribe_path(smtp_server, "ann@example.com")

    response = raw_post(web, path, b"List-Unsubscribe=One-Click", "application/x-www-form-urlencoded")
    assert response.status == 200
    assert response.getheader("Location") is None and response.getheader("Set-Cookie") is None
    assert contact(rt, "ann@example.com").email_status == "unsubscribed"

    again = raw_post(web, path, b"List-Unsubscribe=One-Click", "application/x-www-form-urlencoded")
    assert again.status == 200
    [record] = consents(rt)  # doing it twice is fine, and records it once
    assert (record.channel, record.action, record.method) == ("email", "opt-out", "one-click")
    assert record.delivery_id == deliveries(rt)[0].id and record.ip == "127.0.0.1"


def test_a_multipart_one_click_post_works_too(rt, web, smtp_server) -> None:
    add_contact(rt, "ann@example.com", "lead-nurture")
    send_due(rt)
    boundary = "----provider"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\n"
            f"One-Click\r\n--{boundary}--\r\n").encode()
    response = raw_post(web, unsubscribe_path(smtp_server, "ann@example.com"), body,
                        f"multipart/form-data; boundary={boundary}")
    assert response.status == 200
    assert contact(rt, "ann@example.com").email_status == "unsubscribed"


def test_a_get_shows_the_choices_and_changes_nothing(rt, web, smtp_server) -> None:
    add_contact(rt, "ann@example.com", "lead-nurture")
    send_due(rt)
    connection = http.client.HTTPConnection(web, timeout=10)
    connection.request("GET", preferences_path(smtp_server, "ann@example.com"))
    response = connection.getresponse()
    page = response.read().decode()
    assert response.status == 200 and response.getheader("Set-Cookie") is None
    assert 'Unsubscribe from "Lead nurture"' in page and "Unsubscribe from all marketing email" in page
    assert "a**@example.com" in page and "ann@example.com" not in page
    assert contact(rt, "ann@example.com").email_status == "subscribed" and consents(rt) == []


def test_the_footer_s_unsubscribe_and_preferences_links_are_two_pages(rt, web, smtp_server) -> None:
    add_contact(rt, "ann@example.com", "lead-nurture")
    send_due(rt)
    unsubscribe, manage = unsubscribe_path(smtp_server, "ann@example.com"), preferences_path(smtp_server,
                                                                                             "ann@example.com")
    assert unsubscribe == manage + "/unsubscribe"  # the footer's Unsubscribe is List-Unsubscribe's address
    html = smtp_server.handler.to("ann@example.com")[-1].message.get_body(("html",)).get_content()
    assert re.search(rf'href="https://nurture\.test{unsubscribe}"[^>]*>Unsubscribe</a>', html)
    assert re.search(rf'href="https://nurture\.test{manage}"[^>]*>manage preferences</a>', html)
    client = create_app(rt).test_client()

    page = client.get(unsubscribe).get_data(as_text=True)  # one button, and the way to the choices
    assert "Unsubscribe from all marketing email" in page and f'href="{manage}"' in page
    assert 'Unsubscribe from "Lead nurture"' not in page and "ann@example.com" not in page
    assert contact(rt, "ann@example.com").email_status == "subscribed" and consents(rt) == []  # GET: nothing

    done = client.post(unsubscribe, data={}).get_data(as_text=True)  # its button: out, and told so
    assert "unsubscribed from all marketing email" in done and "Subscribe again" in done
    assert contact(rt, "ann@example.com").email_status == "unsubscribed"
    assert [(c.action, c.method) for c in consents(rt)] == [("opt-out", "unsubscribe-link")]
    assert "not receiving marketing email" in client.get(unsubscribe).get_data(as_text=True)


def test_mail_sent_before_the_split_still_unsubscribes_in_one_click(rt, web, smtp_server) -> None:
    # Its List-Unsubscribe and footer link are /u/<token>: that address still takes the one-click POST.
    add_contact(rt, "ann@example.com", "lead-nurture")
    send_due(rt)
    old = preferences_path(smtp_server, "ann@example.com")
    response = raw_post(web, old, b"List-Unsubscribe=One-Click", "application/x-www-form-urlencoded")
    assert response.status == 200 and response.getheader("Location") is None
    assert contact(rt, "ann@example.com").email_status == "unsubscribed"
    assert [(c.action, c.method) for c in consents(rt)] == [("opt-out", "one-click")]


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-3],                                   # truncated
    lambda t: t[:-5] + ("A" if t[-5] != "A" else "B") + t[-4:],  # altered (not the last char: padding bits)
    lambda t: "Mg" + t[2:],                             # another delivery id, same signature
    lambda t: "nonsense",
])
def test_a_forged_or_damaged_token_changes_nothing(rt, web, smtp_server, mangle) -> None:
    add_contact(rt, "ann@example.com", "lead-nurture")
    send_due(rt)
    token = unsubscribe_path(smtp_server, "ann@example.com").rsplit("/", 1)[1]
    response = raw_post(web, f"/u/{mangle(token)}", b"List-Unsubscribe=One-Click",
                        "application/x-www-form-urlencoded")
    assert response.status == 400 and b"isn't valid" in response.body
    assert contact(rt, "ann@example.com").email_status == "subscribed" and consents(rt) == []


def test_a_message_queued_before_the_unsubscribe_is_not_sent_after_it(rt, web, smtp_server, clock) -> None:
    add_contact(rt, "ann@example.com", "lead-nurture")
    send_due(rt)
    path = unsubscribe_path(smtp_server, "ann@example.com")
    clock.advance(days=3)
    queued: list[str] = []
    dispatch.claim_batches(rt, queued.append, max_batches=5)  # edu-2 claimed and queued...
    assert queued
    raw_post(web, path, b"List-Unsubscribe=One-Click", "application/x-www-form-urlencoded")  # ...then this
    for token in queued:
        dispatch.run_batch(rt, token)
    clock.advance(days=30)
    send_due(rt)
    assert len(smtp_server.handler.to("ann@example.com")) == 1
    assert [d.status for d in deliveries(rt)] == ["sent", "skipped"]
    assert "unsubscribed" in deliveries(rt)[1].error


def test_leaving_one_sequence_keeps_the_others(rt, smtp_server, clock) -> None:
    add_contact(rt, "ann@example.com", "lead-nurture")
    add_contact(rt, "ann@example.com", "customer")
    send_due(rt)
    lead = [r for r in smtp_server.handler.to("ann@example.com") if "lead-nurture" in r.message["List-Id"]][0]
    body = lead.message.get_body(("plain",)).get_content()  # its preference page
    path = urlsplit(re.search(r"Manage your email preferences:\s+(\S+)", body)[1]).path
    client = create_app(rt).test_client()
    page = client.post(path, data={"action": "sequence"}).get_data(as_text=True)
    assert 'no more emails from "Lead nurture"' in page
    assert enrollment(rt, "ann@example.com", "lead-nurture").status == "stopped"
    for _ in range(4):  # each step waits from the one before it
        clock.advance(days=20)
        send_due(rt)
    sequences = [r.message["List-Id"].split("<")[1].split(".")[0] for r in smtp_server.handler.to("ann@example.com")]
    # The customer sequence goes on: thank-you and feedback (no rating given, nothing bought: nothing more).
    assert sequences.count("lead-nurture") == 1 and sequences.count("customer") == 2
    [record] = consents(rt)
    assert (record.action, record.scope, record.method) == ("opt-out", "lead-nurture", "preference-page")


def test_the_preference_page_resubscribes_with_fresh_consent_and_sets_texts(rt, smtp_server) -> None:
    add_contact(rt, "ann@example.com", "customer", phone="+14155552671")
    send_due(rt)
    path = preferences_path(smtp_server, "ann@example.com")
    client = create_app(rt).test_client()
    assert "unsubscribed from all" in client.post(path, data={"action": "all"}).get_data(as_text=True)
    assert contact(rt, "ann@example.com").email_status == "unsubscribed"
    page = client.post(path, data={"action": "resubscribe"}).get_data(as_text=True)
    assert "subscribed again" in page and contact(rt, "ann@example.com").email_status == "subscribed"
    client.post(path, data={"action": "sms-on"})
    assert contact(rt, "ann@example.com").sms_status == "subscribed"
    client.post(path, data={"action": "sms-off"})
    assert contact(rt, "ann@example.com").sms_status == "unsubscribed"
    records = [(c.channel, c.action) for c in consents(rt)]
    assert records == [("email", "opt-out"), ("email", "opt-in"), ("sms", "opt-in"), ("sms", "opt-out")]
    sms_in = consents(rt)[2]
    assert "Reply STOP" in sms_in.consent_text and len(sms_in.consent_hash) == 64
    assert client.get(path).headers.get("Set-Cookie") is None


def test_every_starter_email_carries_the_list_headers_footer_link_and_address(rt, smtp_server, clock) -> None:
    add_contact(rt, "ann@example.com", "lead-nurture", first_name="Ann")
    bob = add_contact(rt, "bob@example.com", first_name="Bob")
    with Session(rt.db) as session:  # Bob buys the course: the customer sequence, upsell included
        automation.record(session, rt, session.get(Contact, bob), "purchase", {"product": "wheel-6-week"},
                          rt.clock())
        session.commit()
    for _ in range(8):
        send_due(rt)
        clock.advance(days=7)
    assert len(smtp_server.received) == 4 + 3  # edu-1..3 and offer; thank-you, feedback and upsell
    for received in smtp_server.received:
        message = received.message
        url = re.match(r"<(https://nurture\.test/u/[^>]+)>, <mailto:", message["List-Unsubscribe"])[1]
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        for kind in ("plain", "html"):
            body = message.get_body((kind,)).get_content()
            assert url in body and "12 Kiln Lane, Portland, OR 97201" in body


def test_the_suppression_list_commands(rt, smtp_server, project, monkeypatch, tmp_path, database_url) -> None:
    for name, value in worker_env(project, database_url).items():
        monkeypatch.setenv(name, value)
    from nurture.cli import main

    runner = CliRunner()
    assert runner.invoke(main, ["suppress", "Bounced@Example.com"]).output == "suppressed bounced@example.com\n"
    csv_file = tmp_path / "list.csv"
    csv_file.write_text("email,reason\ncomplaint@example.com,complaint\nnot-an-address\nold@example.com\n")
    result = runner.invoke(main, ["suppress", "--import", str(csv_file)])
    assert result.exit_code == 0
    assert "suppressed 2 address(es), 1 invalid row(s) skipped" in result.output
    assert f"{csv_file}:3: skipped 'not-an-address'" in result.output
    listed = runner.invoke(main, ["suppress", "--list"]).output
    assert [line.split("\t")[0] for line in listed.splitlines()] == [
        "bounced@example.com", "complaint@example.com", "old@example.com"]
    assert "complaint" in listed
    assert runner.invoke(main, ["suppress", "nope"]).exit_code == 1

    add_contact(rt, "complaint@example.com", "customer")
    send_due(rt)
    assert smtp_server.received == []
    assert deliveries(rt)[0].status == "skipped"
    with Session(rt.db) as session:
        assert len(session.exec(select(Suppression)).all()) == 3


def test_dkim_signs_the_message_and_covers_both_list_headers(make_runtime, sqlite_url, smtp_server,
                                                            tmp_path) -> None:
    dknewkey = Path(sys.executable).parent / "dknewkey"
    subprocess.run([str(dknewkey), str(tmp_path / "mail")], check=True, capture_output=True)
    rt = make_runtime(sqlite_url, EMAIL_BACKEND="smtp", SMTP_URL=smtp_server.url, DKIM_SELECTOR="mail",
                      DKIM_DOMAIN="juniper.test", DKIM_PRIVATE_KEY=str(tmp_path / "mail.key"))
    add_contact(rt, "ann@example.com", "lead-nurture")
    send_due(rt)
    [received] = smtp_server.received
    record = (tmp_path / "mail.dns").read_bytes()

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"mail._domainkey.juniper.test."
        return record

    assert dkim.verify(received.data, dnsfunc=dns)
    signature = received.message["DKIM-Signature"]
    signed = re.search(r"h=([^;]+)", signature.replace("\r\n", "").replace(" ", ""))[1].lower().split(":")
    assert "list-unsubscribe" in signed and "list-unsubscribe-post" in signed
    tampered = received.data.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
                                     b"List-Unsubscribe-Post: List-Unsubscribe=Two-Click")
    assert not dkim.verify(tampered, dnsfunc=dns)


def test_dkim_settings_need_all_three_variables(tmp_path) -> None:
    from nurture.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="^DKIM_DOMAIN: required"):
        load_settings({"VAR_DIR": str(tmp_path), "DKIM_SELECTOR": "mail", "DKIM_PRIVATE_KEY": "x"})


def test_the_enrollment_is_not_revived_by_a_batch_that_raced_the_unsubscribe(rt, smtp_server) -> None:
    add_contact(rt, "ann@example.com", "lead-nurture")
    queued: list[str] = []
    dispatch.claim_batches(rt, queued.append, max_batches=5)
    with Session(rt.db) as session:
        row = session.exec(select(Enrollment)).one()
        row.status, row.stop_reason = "stopped", "unsubscribed from this sequence"
        session.commit()
    for token in queued:
        dispatch.run_batch(rt, token)
    assert smtp_server.received == []
    assert enrollment(rt, "ann@example.com", "lead-nurture").status == "stopped"
