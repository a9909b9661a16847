"""Helpers for tests/test_locales.py: a project made of the starter content the repository ships (its French
templates and subjects are what the issue's end-to-end test checks), and Twilio's signed webhook."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po
from flask.testing import FlaskClient
from sqlmodel import Session, select
from twilio.request_validator import RequestValidator

from nurture.content.app_words import TRANSLATIONS_DIR
from nurture.runtime import Runtime
from nurture.store.models import Contact, Event
from tests.conftest import ROOT, FakeClock, Received
from tests.twilio_fake import AUTH_TOKEN

PUBLIC = "https://nurture.test"  # BASE_URL in tests: what Twilio signs
FORM = "beginners-guide"
FRENCH_BROWSER = {"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5", "User-Agent": "Mozilla/5.0 TestBrowser/1.0"}
STARTER = ("sequences", "email_templates", "sms_templates", "forms")


def use_starter_content(project: Path) -> Path:
    """Replace the tests' frozen content with what the repository ships."""
    for folder in STARTER:
        shutil.rmtree(project / folder, ignore_errors=True)
        shutil.copytree(ROOT / folder, project / folder)
    return project


def sign_up(client: FlaskClient, rt: Runtime, clock: FakeClock, headers: dict[str, str], form_id: str = FORM,
            **fields: str):  # noqa: ANN201
    """POST the form as a person does, twenty seconds after it was handed out."""
    started = rt.signer.form_token(form_id, clock())
    clock.advance(seconds=20)
    return client.post(f"/forms/{form_id}", data={"_started": started, "website": "", **fields}, headers=headers)


def contact(rt: Runtime, email: str) -> Contact:
    with Session(rt.db) as session:
        return session.exec(select(Contact).where(Contact.email == email)).one()


def events(rt: Runtime, type_: str) -> list[Event]:
    with Session(rt.db) as session:
        return list(session.exec(select(Event).where(Event.type == type_).order_by(Event.id)))


def text_part(received: Received) -> str:
    return received.message.get_body(("plain",)).get_content()


def html_part(received: Received) -> str:
    return received.message.get_body(("html",)).get_content()


def link_path(text: str, prefix: str) -> str:
    """The path of the first https://nurture.test<prefix>... link in `text`."""
    found = re.search(rf"{re.escape(PUBLIC + prefix)}\S+", text)
    assert found, f"no {prefix} link in {text[:300]!r}"
    return urlsplit(found[0]).path


def text_in(client: FlaskClient, phone: str, body: str) -> tuple[int, str]:
    """A text from `phone`, POSTed to /twilio/inbound and signed as Twilio signs it (twilio's own validator)."""
    params = {"MessageSid": "SM" + "1" * 32, "AccountSid": "AC" + "0" * 32, "From": phone, "To": "+15005550006",
              "Body": body, "NumMedia": "0"}
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + "/twilio/inbound", params)
    response = client.post("/twilio/inbound", data=params, headers={"X-Twilio-Signature": signature})
    return response.status_code, response.get_data(as_text=True)


def extracted_catalog(tmp: Path) -> Catalog:
    """nurture's own words as `nurture/translations/update.sh` extracts them (pybabel, the same options)."""
    pot = tmp / "messages.pot"
    subprocess.run([sys.executable, "-c", "from babel.messages.frontend import main; main()", "-q", "extract",
                    "-F", str(TRANSLATIONS_DIR / "babel.cfg"), "-k", "translate:2", "-k", "Words", "-k", "detailed",
                    "--no-location", "-o", str(pot), "."], cwd=ROOT, check=True, capture_output=True)
    with pot.open("rb") as f:
        return read_po(f)


def shipped_catalog(locale: str) -> Catalog:
    with (TRANSLATIONS_DIR / locale / "LC_MESSAGES" / "messages.po").open("rb") as f:
        return read_po(f, locale=locale)
