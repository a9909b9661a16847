"""What the owner and the contacts see: the overview's counts and offers, and an email's footer."""

from __future__ import annotations

import email
import re
from email.message import Message
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from nurture.runtime import Runtime
from nurture.web import create_app
from tests.helpers import add_contact, send_due

AUTH = {"Authorization": "Bearer test-api-key-0123456789"}
BRAND = "Juniper Pottery Studio"


@pytest.fixture
def rt(make_runtime, database_url) -> Runtime:  # noqa: ANN001
    return make_runtime(database_url)


@pytest.fixture
def client(rt: Runtime) -> FlaskClient:
    return create_app(rt).test_client()


def row(page: str, key: str) -> str:
    """The overview's table row of one step, tags stripped."""
    match = re.search(rf"<tr[^>]*>(?:(?!</tr>).)*?{re.escape(key)}(?:(?!</tr>).)*</tr>", page, re.S)
    assert match, f"no row for {key}"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(0))).strip()


def test_the_overview_names_each_upsell_offer_once(client: FlaskClient) -> None:
    page = client.get("/", headers=AUTH).get_data(as_text=True)
    assert "offers: glaze-kit, wheel-6-week" in page
    assert page.count("wheel-6-week, wheel-6-week") == 0


def test_the_overview_counts_who_waits_at_a_step_and_what_it_sent(client: FlaskClient, rt: Runtime) -> None:
    for name in ("ann", "bob"):
        add_contact(rt, f"{name}@example.com", "lead-nurture")
    before = row(client.get("/", headers=AUTH).get_data(as_text=True), "edu-1")
    send_due(rt)
    after = row(client.get("/", headers=AUTH).get_data(as_text=True), "edu-1")
    assert before.endswith(" 2 0") and after.endswith(" 0 2"), (before, after)


def sent_message(rt: Runtime) -> Message:
    [path] = Path(rt.settings.var_dir, "outbox").glob("*.eml")
    return email.message_from_bytes(path.read_bytes())


def part(message: Message, content_type: str) -> str:
    found = next(p for p in message.walk() if p.get_content_type() == content_type)
    return found.get_payload(decode=True).decode()


def test_the_footer_names_the_brand_once(rt: Runtime) -> None:
    add_contact(rt, "ann@example.com", "lead-nurture")
    send_due(rt)
    message = sent_message(rt)
    text_footer = part(message, "text/plain").rpartition("-" * 40)[2]
    html_footer = part(message, "text/html").rpartition('class="footer"')[2]
    assert text_footer.count(BRAND) == 1 and html_footer.count(BRAND) == 1
    assert "12 Kiln Lane, Portland, OR 97201" in text_footer and "12 Kiln Lane" in html_footer
