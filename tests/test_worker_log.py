"""The worker's log: a healthy start has no ERROR line, and the tick RQ queues every few seconds is not news."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

import worker
from nurture.config import load_settings
from nurture.runtime import Runtime, build_runtime, use_runtime
from tests.conftest import FakeClock, worker_env

CUSTOMER = """
id: customer
name: Customer
stage: deliver-satisfy
steps:
  - {id: thanks, kind: thank-you, template: thanks, subject: Thanks}
  - id: wait-rating
    wait_for: {event: rating, timeout: 3d}
  - id: upsell
    wait: 1d
    kind: offer
    offers:
      - {after: wheel-course, offer: glaze-kit, template: upsell, subject: Glaze}
  - {id: reminder, kind: educate, channel: sms, template: reminder}
"""
EMAIL = "{{ postal_address }} {{ unsubscribe_url }}"


@pytest.fixture
def customer_runtime(tmp_path: Path, sqlite_url: str, clock: FakeClock) -> Iterator[Runtime]:
    root = tmp_path / "tree"
    for folder in ("sequences", "email_templates", "sms_templates"):
        (root / folder).mkdir(parents=True)
    (root / "sequences" / "customer.yaml").write_text(CUSTOMER)
    for name in ("thanks", "upsell"):
        (root / "email_templates" / f"{name}.html").write_text(EMAIL)
        (root / "email_templates" / f"{name}.txt").write_text(EMAIL)
    (root / "sms_templates" / "reminder.txt").write_text("See you Saturday!")
    rt = build_runtime(load_settings(worker_env(root, sqlite_url)), clock=clock)
    use_runtime(rt)
    yield rt
    use_runtime(None)


def test_warming_up_wait_offer_and_text_steps_logs_no_error(customer_runtime: Runtime,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    assert customer_runtime.sequences.get("customer") is not None
    with caplog.at_level(logging.INFO):
        worker.warm_up()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert set(customer_runtime.catalog._compiled) == {"thanks", "upsell"}  # what it sends, compiled once


@pytest.fixture
def cron_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("rq.cron")
    logger.addFilter(worker.tick_enqueued_at_debug)
    yield logger
    logger.removeFilter(worker.tick_enqueued_at_debug)


def test_the_tick_being_queued_is_logged_at_debug(cron_logger: logging.Logger,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        cron_logger.info("Enqueued job tick to queue nurture")
        cron_logger.info("Scheduler started")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [("INFO", "Scheduler started")]
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        cron_logger.info("Enqueued job tick to queue nurture")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [("DEBUG", "Enqueued job tick to queue nurture")]
