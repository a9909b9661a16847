"""The console's Forms pages: each form with its sign-ups, confirmations and confirmation rate over a
period, and its embed snippets; the counts come from the consent records the signup code writes."""

from __future__ import annotations

import html
from pathlib import Path

import pytest

from nurture.content.forms import FormRegistry
from nurture.insight.form_stats import form_stats
from tests.conftest import FakeClock
from tests.console_pages_support import add_forms, sign_up
from tests.console_support import logged_in, new_client


@pytest.fixture
def rt(make_runtime, database_url, project: Path):  # noqa: ANN001, ANN201
    add_forms(project)
    return make_runtime(database_url)


def stats_by_form(rt, period: str = "30d") -> dict:  # noqa: ANN001
    _since, rows = form_stats(rt, FormRegistry(rt.settings.forms_dir).all(), period)
    return {row.form_id: (row.signups, row.confirmed, row.confirmation_rate) for row in rows}


def test_it_counts_sign_ups_and_the_confirmations_that_answer_them(rt, clock: FakeClock) -> None:
    sign_up(rt, "old@example.com", confirm=True)  # before the period: counts in neither column
    clock.advance(days=40)
    sign_up(rt, "late@example.com")  # ten days ago: in the 30 days, not in the 7
    clock.advance(days=10)
    for n in range(3):
        sign_up(rt, f"ann{n}@example.com", confirm=True)
    sign_up(rt, "bob@example.com")
    sign_up(rt, "ann0@example.com", confirm=True)  # signing up twice is one person
    sign_up(rt, "q1@example.com", form_id="quick-list")
    sign_up(rt, "q2@example.com", form_id="quick-list")
    assert stats_by_form(rt, "7d") == {"beginners-guide": (4, 3, 0.75), "quick-list": (2, 0, None)}
    assert stats_by_form(rt, "30d") == {"beginners-guide": (5, 3, 0.6), "quick-list": (2, 0, None)}
    assert stats_by_form(rt, "365d") == {"beginners-guide": (6, 4, 4 / 6), "quick-list": (2, 0, None)}


def test_a_form_whose_file_is_gone_keeps_its_sign_ups(rt, project: Path) -> None:
    sign_up(rt, "q1@example.com", form_id="quick-list")
    (project / "forms" / "quick-list.yaml").unlink()
    assert stats_by_form(rt) == {"beginners-guide": (0, 0, None), "quick-list": (1, 0, 0.0)}


def test_the_forms_page_lists_each_form_with_its_numbers(rt) -> None:
    for n in range(4):
        sign_up(rt, f"ann{n}@example.com", confirm=n < 3)
    client = logged_in(rt, "viewer")  # looking needs no owner
    page = client.get("/signup-forms").get_data(as_text=True)
    assert 'data-form="beginners-guide"' in page and 'data-form="quick-list"' in page
    assert '<td data-metric="signups">4</td>' in page and '<td data-metric="rate">75%</td>' in page
    assert "none: single opt-in" in page
    assert 'href="/signup-forms/beginners-guide?since=30d"' in page
    assert client.get("/signup-forms?since=7d").status_code == 200
    assert client.get("/signup-forms?since=nonsense").status_code == 200  # the default period, not an error


def test_a_form_page_shows_its_three_snippets_ready_to_copy(rt) -> None:
    sign_up(rt, "ann@example.com", confirm=True)
    client = logged_in(rt)
    page = client.get("/signup-forms/beginners-guide").get_data(as_text=True)
    boxes = [html.unescape(box) for box in page.split("<textarea")[1:]]
    assert len(boxes) == 3
    assert 'action="https://nurture.test/forms/beginners-guide"' in boxes[0] and 'name="_started"' in boxes[0]
    assert '<script src="https://nurture.test/forms/beginners-guide/embed.js" async></script>' in boxes[1]
    assert "https://nurture.test/forms/beginners-guide</textarea>" in boxes[2]
    assert page.count('class="copy" hidden') == 3  # shown by the script only: without it, select by hand
    assert client.get("/signup-forms/no-such-form").status_code == 404


def test_the_forms_pages_need_a_login(rt) -> None:
    client = new_client(rt)
    for path in ("/signup-forms", "/signup-forms/beginners-guide"):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=")


def test_a_period_ends_now(rt, clock: FakeClock) -> None:
    sign_up(rt, "ann@example.com")
    clock.advance(days=7, seconds=1)
    assert stats_by_form(rt, "7d")["beginners-guide"] == (0, 0, None)
    clock.advance(seconds=-2)
    assert stats_by_form(rt, "7d")["beginners-guide"] == (1, 0, 0.0)
