"""What the owner and the contacts see: the overview's counts and offers, and an email's footer."""

from __future__ import annotations

import email
import re
from email.message import Message
from pathlib import Path

import pytest

from nurture.runtime import Runtime
from tests.console_support import logged_in
from tests.helpers import add_contact, send_due

BRAND = "Juniper Pottery Studio"


@pytest.fixture
def rt(make_runtime, database_url) -> Runtime:  # noqa: ANN001
    return make_runtime(database_url)


def step_row(page: str, step: str) -> str:
    """The funnel's table row of one step, tags stripped."""
    match = re.search(rf'<tr data-step="{re.escape(step)}">(?:(?!</tr>).)*</tr>', page, re.S)
    assert match, f"no row for {step}"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(0))).strip()


def test_the_funnel_names_each_upsell_offer_once(rt: Runtime) -> None:
    """(Once the Basic-auth overview's offers column, which listed wheel-6-week twice.)"""
    page = logged_in(rt, "viewer").get("/sequences/customer").get_data(as_text=True)
    assert "offers: glaze-kit, wheel-6-week" in step_row(page, "upsell")
    assert "wheel-6-week, wheel-6-week" not in page


def counts(row: str) -> list[str]:
    """The numbers of a funnel row, rates left out: reached, sent, skipped, deferred, delivered, ..."""
    return re.findall(r"(?<![\d.])(\d+)(?![\d%])", row.split("email", 1)[1])


def test_the_funnel_counts_who_reached_a_step_and_what_it_sent(rt: Runtime) -> None:
    """(Once the overview's waiting and sent columns: 2 waiting and 0 sent, then 0 waiting and 2 sent.)"""
    for name in ("ann", "bob"):
        add_contact(rt, f"{name}@example.com", "lead-nurture")
    client = logged_in(rt, "viewer")
    before = counts(step_row(client.get("/sequences/lead-nurture").get_data(as_text=True), "edu-1"))
    send_due(rt)
    after = counts(step_row(client.get("/sequences/lead-nurture").get_data(as_text=True), "edu-1"))
    assert before[:2] == ["2", "0"] and after[:2] == ["2", "2"], (before, after)


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
