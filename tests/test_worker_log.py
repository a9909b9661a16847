"""The worker's log: a healthy start has no ERROR line, and the tick RQ queues every few seconds is not news."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue

import worker
from nurture import jobs
from nurture.config import load_settings
from nurture.runtime import Runtime, build_runtime, use_runtime
from nurture.store.db import upgrade
from tests.conftest import ROOT, FakeClock, worker_env

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
    upgrade(rt.db)
    use_runtime(rt)
    yield rt
    use_runtime(None)


def test_warming_up_wait_offer_and_text_steps_logs_no_error(customer_runtime: Runtime,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    assert customer_runtime.sequences.get("customer") is not None
    with caplog.at_level(logging.INFO):
        worker.warm_up()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    # What it sends, compiled once: each template under the language chain it was asked for (the default's).
    assert {name for name, _chain in customer_runtime.catalog._compiled} == {"thanks", "upsell"}


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


COURSE = """
id: course
name: Course
stage: nurture-prospects
steps:
  - {id: hello, kind: educate, template: thanks, subject: Hello}
"""


class _BurstWorker(worker.NurtureWorker):
    def subscribe(self) -> None:
        """No pubsub thread (it carries `rq` commands, none used here): redis-py joins it on stop while it
        waits up to 60 s for a message, so a burst worker took a minute to finish."""


def test_a_refused_edit_is_logged_once_by_a_worker_that_forks_for_each_tick(
        customer_runtime: Runtime, redis_url: str, tmp_path: Path) -> None:
    """RQ runs every job in a work horse forked from the worker, and what a horse learns dies with it: each
    tick used to start from the worker's start-up state, check the edited file again and say so again."""
    rt = customer_runtime
    rt.redis = Redis.from_url(redis_url)
    (rt.settings.sequences_dir / "course.yaml").write_text(COURSE)
    jobs.tick()  # the worker has run the first version
    running = rt.sequences.get("course").version
    rt.db.dispose()
    (rt.settings.sequences_dir / "course.yaml").write_text(COURSE.replace("template: thanks", "template: thanx"))
    queue = Queue(rt.settings.queue_name, connection=rt.redis)
    for n in range(3):
        queue.enqueue(jobs.tick, job_id=f"tick-{n}")
    said = tmp_path / "worker.log"  # the horses are other processes: they write to the file this opened
    handler = logging.FileHandler(said)
    logging.getLogger("nurture").addHandler(handler)
    try:
        _BurstWorker([queue], connection=rt.redis).work(burst=True)
    finally:
        logging.getLogger("nurture").removeHandler(handler)
        handler.close()
    lines = said.read_text().splitlines()
    assert [line for line in lines if "course.yaml has errors" in line] == [
        f"sequences/course.yaml has errors; version {running} keeps running (nurture check):"]
    assert rt.sequences.get("course").step("hello").template == "thanks"


def test_ctrl_c_stops_the_worker_and_its_tick_without_a_traceback(project: Path, sqlite_url: str, redis_url: str,
                                                                   tmp_path: Path) -> None:
    """Ctrl-C under `make run` reaches the whole process group (SIGINT), and `nurture dev` then sends each child
    SIGTERM: the tick's scheduler gets a second stop while it unregisters itself from Redis. It used to print
    RQ's StopRequested traceback on the way out."""
    env = worker_env(project, sqlite_url, REDIS_URL=redis_url, TICK_SECONDS="1")
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, str(ROOT / "worker.py")], env=env, cwd=ROOT,
                                   start_new_session=True, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        # Running as a user leaves it: its tick has been queued and a job done (RQ installs its signal
        # handlers only after it registers itself).
        ticks = Queue(load_settings(env).queue_name, connection=Redis.from_url(redis_url)).finished_job_registry
        while process.poll() is None and not ticks.count:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        os.killpg(process.pid, signal.SIGINT)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0, log.read_text()  # RQ alone took up to a minute
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    tick_stopped = time.monotonic() + 10
    while _processes_of_group(process.pid):
        assert time.monotonic() < tick_stopped, f"left running: {_processes_of_group(process.pid)}"
        time.sleep(0.1)
    assert "Traceback" not in log.read_text(), log.read_text()


def _processes_of_group(group: int) -> list[str]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        if int(fields[2]) == group:
            found.append(text)
    return found
