"""GDPR access and erasure (nurture.people.erasure) on SQLite and PostgreSQL: the export holds everything;
after an erasure nothing in any table names the person, the counts stay, and the address — kept only as a
digest — is refused by the API and the CLI and quietly dropped by a sign-up form, until the owner lifts it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlmodel import Session, func, select

from nurture.cli import main
from nurture.delivery import webhooks
from nurture.people import erasure, owner_actions, suppression
from nurture.rules.erasure import address_digest
from nurture.runtime import Runtime
from nurture.store.models import Contact, Delivery, ErasedAddress, Event, Subscription, WebhookMessage
from nurture.web import create_app
from tests.conftest import CONTENT, FakeClock, worker_env
from tests.contacts_support import OWNER, every_row_as_text
from tests.helpers import add_contact, send_due
from tests.webhooks_support import SECRET_ENV, receiver, write_webhooks  # noqa: F401  (receiver: a fixture)

AUTH = {"Authorization": "Bearer test-api-key-0123456789"}
UA = "Mozilla/5.0 (X11; Linux x86_64) Quillbrowser/9.1"
IP = "203.0.113.77"
PERSONAL = ["annabel.quill@example.com", "Annabel", "Quillfeather", "+14155552671", IP, "Quillbrowser",
            "kiln-club-member", "order-annabel-7"]


@pytest.fixture
def rt(make_runtime, database_url: str, project: Path) -> Runtime:  # noqa: ANN001
    shutil.copytree(CONTENT / "forms", project / "forms")
    return make_runtime(database_url, FORM_MIN_FILL_SECONDS="0", FORM_RATE_LIMIT="1000 per minute")


@pytest.fixture
def client(rt: Runtime) -> FlaskClient:
    return create_app(rt).test_client()


def sign_up(rt: Runtime, client: FlaskClient, email: str, **fields: str):  # noqa: ANN201
    data = {"_started": rt.signer.form_token("beginners-guide", rt.clock()), "email": email, **fields}
    return client.post("/forms/beginners-guide", data=data, headers={"User-Agent": UA},
                       environ_base={"REMOTE_ADDR": IP})


def annabel(rt: Runtime, client: FlaskClient, clock: FakeClock) -> int:
    """Signed up through a form (IP, user agent, consent), confirmed, with a field, a tag, texts on, an
    event with her own idempotency key, messages sent and her phone on the suppression list."""
    signed = sign_up(rt, client, "Annabel.Quill@example.com", first_name="Annabel Quillfeather",
                     phone="+1 415 555 2671", interest="Mugs", sms_consent="yes")
    assert signed.status_code in (200, 303), signed.get_data(as_text=True)
    with Session(rt.db) as session:
        contact_id = session.exec(select(Contact.id)).one()
    send_due(rt)
    assert client.post(f"/confirm/{rt.signer.confirm_token(contact_id)}", headers={"User-Agent": UA},
                       environ_base={"REMOTE_ADDR": IP}).status_code < 400
    client.post("/api/contacts", headers=AUTH, json={"email": "annabel.quill@example.com", "tags": ["kiln-club-member"],
                                                     "fields": {"note": "kiln-club-member"}})
    assert client.post("/api/events", headers=AUTH, json={"email": "annabel.quill@example.com", "type": "webinar",
                                                          "idempotency_key": "order-annabel-7"}).status_code < 300
    clock.advance(days=3)
    send_due(rt)
    with Session(rt.db) as session:
        suppression.add(session, "annabel.quill@example.com", "complaint", clock())
        session.commit()
    return contact_id


def counts(rt: Runtime) -> tuple[int, int, int]:
    with Session(rt.db) as session:
        return (session.exec(select(func.count()).select_from(Contact)).one(),
                session.exec(select(func.count()).select_from(Delivery)).one(),
                session.exec(select(func.count()).select_from(Event)).one())


def test_the_export_holds_everything_on_record_about_the_person(rt, client, clock) -> None:  # noqa: ANN001
    contact_id = annabel(rt, client, clock)
    with Session(rt.db) as session:
        data = erasure.export(session, session.get(Contact, contact_id))
    text = json.dumps(data)
    for value in PERSONAL:
        assert value.lower() in text.lower(), value
    assert data["contact"]["email"] == "annabel.quill@example.com"
    assert {c["ip"] for c in data["consent"]} >= {IP}
    assert len(data["messages"]) >= 2 and data["messages"][0]["to"] == "annabel.quill@example.com"
    assert data["suppressed"] == [{"address": "annabel.quill@example.com", "reason": "complaint",
                                   "since": clock().isoformat()}]


def test_after_an_erasure_no_table_names_the_person_and_the_counts_stay(rt, client, clock) -> None:  # noqa: ANN001
    contact_id = annabel(rt, client, clock)
    dump = every_row_as_text(rt)
    assert all(value in dump for value in PERSONAL if value != "+14155552671")  # the dump holds her before
    contacts, messages, events = counts(rt)
    with Session(rt.db) as session:
        stage = session.get(Contact, contact_id).stage
        erasure.erase(session, session.get(Contact, contact_id), OWNER, clock())
        session.commit()

    dump = every_row_as_text(rt)
    for value in PERSONAL:
        assert value.lower() not in dump.lower(), value
    assert counts(rt) == (contacts, messages, events + 1)  # + contact.erased
    with Session(rt.db) as session:
        erased = session.get(Contact, contact_id)
        assert (erased.email, erased.email_status, erased.sms_status, erased.stage) == (
            f"erased-{contact_id}@erased.invalid", Subscription.ERASED, Subscription.ERASED, stage)
        assert session.exec(select(ErasedAddress.digest)).all() == [address_digest("annabel.quill@example.com")]
        sent = session.exec(select(Event).where(Event.type == "email.sent")).all()
        assert sent and all(e.data.get("sequence") and e.data.get("step") for e in sent)  # the funnel's counts
        assert all(e.status in ("stopped", "completed") for e in erasure.store.enrollments_of(session, contact_id))
    clock.advance(days=30)
    assert send_due(rt).get("sent", 0) == 0


def test_an_erased_address_is_refused_by_the_api_and_the_cli_and_dropped_by_a_form_until_lifted(
        rt, client, clock, project: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    contact_id = annabel(rt, client, clock)
    with Session(rt.db) as session:
        erasure.erase(session, session.get(Contact, contact_id), OWNER, clock())
        session.commit()
    before = counts(rt)

    refused = client.post("/api/contacts", headers=AUTH, json={"email": " ANNABEL.quill@Example.com"})
    assert refused.status_code == 400 and refused.json["field"] == "email"
    assert "erased at the person's request" in refused.json["error"]
    page = sign_up(rt, client, "annabel.quill@example.com", first_name="Annabel")
    assert page.status_code in (200, 303)  # the same answer as any sign-up: nobody learns she was a contact
    assert counts(rt) == before

    for name, value in worker_env(project, database_url).items():
        monkeypatch.setenv(name, value)
    added = CliRunner().invoke(main, ["contacts", "add", "annabel.quill@example.com"])
    assert added.exit_code == 1 and "erased at the person's request" in added.output
    lifted = CliRunner().invoke(main, ["contacts", "unerase", "Annabel.Quill@example.com"])
    assert lifted.exit_code == 0, lifted.output
    assert client.post("/api/contacts", headers=AUTH, json={"email": "annabel.quill@example.com"}).status_code == 201
    again = CliRunner().invoke(main, ["contacts", "unerase", "annabel.quill@example.com"])
    assert again.exit_code == 1 and "not on the erased list" in again.output


def test_the_cli_exports_and_erases_through_the_same_functions(rt, client, clock, project: Path,  # noqa: ANN001
                                                               database_url: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    contact_id = annabel(rt, client, clock)
    for name, value in worker_env(project, database_url).items():
        monkeypatch.setenv(name, value)
    exported = CliRunner().invoke(main, ["contacts", "export-person", "ANNABEL.QUILL@example.com"])
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.output)["contact"]["first_name"] == "Annabel Quillfeather"

    refused = CliRunner().invoke(main, ["contacts", "erase", "annabel.quill@example.com"], input="n\n")
    assert refused.exit_code == 1
    erased = CliRunner().invoke(main, ["contacts", "erase", "annabel.quill@example.com", "--yes"])
    assert erased.exit_code == 0 and f"erased contact {contact_id}" in erased.output
    with Session(rt.db) as session:
        done = session.exec(select(Event.type, Event.data).where(Event.contact_id == contact_id,
                                                                 Event.type.in_(["contact.exported", "contact.erased"]))
                            .order_by(Event.id)).all()
    assert done == [("contact.exported", {"by": "cli", "via": "cli"}),
                    ("contact.erased", {"by": "cli", "via": "cli",  # the digest: for the webhook receivers
                                        "address_digest": address_digest("annabel.quill@example.com")})]
    gone = CliRunner().invoke(main, ["contacts", "export-person", "annabel.quill@example.com"])
    assert gone.exit_code == 1 and "no contact" in gone.output


def test_the_api_erases_by_address_and_says_who(rt, client, clock) -> None:  # noqa: ANN001
    contact_id = annabel(rt, client, clock)
    assert client.delete("/api/contacts/annabel.quill@example.com").status_code == 401
    done = client.delete("/api/contacts/Annabel.Quill@example.com", headers=AUTH)
    assert done.status_code == 200 and done.json == {"erased": True, "id": contact_id}
    assert client.delete("/api/contacts/annabel.quill@example.com", headers=AUTH).status_code == 404
    assert client.delete("/api/contacts/not-an-address", headers=AUTH).status_code == 400
    with Session(rt.db) as session:
        (event,) = session.exec(select(Event).where(Event.type == "contact.erased")).all()
        assert event.data == {"by": "api", "via": "api", "address_digest": address_digest("annabel.quill@example.com")}
    for value in PERSONAL:
        assert value.lower() not in every_row_as_text(rt).lower(), value


def test_webhooks_out_lose_the_persons_data_and_a_waiting_message_is_never_sent(
        make_runtime, database_url: str, project: Path, clock: FakeClock, receiver) -> None:  # noqa: ANN001, F811
    write_webhooks(project, receiver.url, events="[contact.created, unsubscribed]")
    rt = make_runtime(database_url, **SECRET_ENV)
    webhooks.deliver_due(rt)  # the endpoint's first sight: it starts from now
    contact_id = add_contact(rt, "annabel.quill@example.com", first_name="Annabel", last_name="Quillfeather")
    clock.advance(minutes=10)
    webhooks.deliver_due(rt)
    assert len(receiver.accepted) == 1 and b"annabel.quill@example.com" in receiver.accepted[0].body
    receiver.fail_first = 1000  # the receiver is down when she unsubscribes: that message waits
    with Session(rt.db) as session:
        owner_actions.unsubscribe(session, session.get(Contact, contact_id), "email", OWNER, clock())
        session.commit()
    clock.advance(minutes=10)
    webhooks.deliver_due(rt)
    with Session(rt.db) as session:
        assert [m.status for m in session.exec(select(WebhookMessage).order_by(WebhookMessage.id))] == [
            "delivered", "pending"]
        erasure.erase(session, session.get(Contact, contact_id), OWNER, clock())
        session.commit()

    dump = every_row_as_text(rt).lower()
    assert "annabel" not in dump and "quillfeather" not in dump
    receiver.fail_first = 0
    sent_before = len(receiver.requests)
    for _ in range(4):
        clock.advance(hours=6)
        webhooks.deliver_due(rt)
    assert all(b"annabel" not in r.body.lower() for r in receiver.requests[sent_before:])
    with Session(rt.db) as session:
        waiting = session.exec(select(WebhookMessage).order_by(WebhookMessage.id)).all()[1]
        assert (waiting.status, waiting.last_error) == ("failed", "not sent: the person was erased")


def test_a_csv_import_skips_an_erased_address_and_adds_the_rest(rt, client, clock, project: Path,  # noqa: ANN001
                                                                 database_url: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    contact_id = annabel(rt, client, clock)
    with Session(rt.db) as session:
        erasure.erase(session, session.get(Contact, contact_id), OWNER, clock())
        session.commit()
    contacts_before = counts(rt)[0]
    for name, value in worker_env(project, database_url).items():
        monkeypatch.setenv(name, value)
    sheet = tmp_path / "list.csv"
    sheet.write_text("email,first_name\nAnnabel.Quill@example.com,Annabel\nnew.person@example.com,New\n")
    result = CliRunner().invoke(main, ["contacts", "import", str(sheet)])
    assert result.exit_code == 0, result.output
    assert "erased at the person's request" in result.output
    assert counts(rt)[0] == contacts_before + 1
    assert "annabel" not in every_row_as_text(rt).lower()
