"""Workers SIGKILLed mid-batch, several of them on PostgreSQL: each kill lands while the SMTP server holds
a message from the victim, after it has the message and before the victim hears the 250 — the one window
nurture documents as unclosable. Those resends, and only those, may reach the server twice."""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import pytest

from tests.faults.conftest import Workers, assert_exactly_once, children_of, drain, enroll, judge, kill_tree, settled

pytestmark = pytest.mark.faults

KILLS = 4
EVERY = 12  # messages between kills


def socket_owner(client_port: int, roots: list[int]) -> int | None:
    """Which of the worker trees under `roots` holds the TCP connection from local port `client_port`."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == client_port:
            inodes.add(f"socket:[{fields[9]}]")
    for root in roots:
        for pid in [root, *children_of(root)]:
            try:
                links = {os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}
            except OSError:
                continue
            if links & inodes:
                return root
    return None


def test_workers_killed_mid_batch_resend_only_in_the_documented_window(make_runtime, postgres_url, faulty_smtp,
                                                                       restartable_redis, workers, clock) -> None:
    smtp, smtp_url = faulty_smtp
    smtp.delay = 0.05  # long enough that every worker is mid-batch most of the time
    rt = make_runtime(postgres_url)
    enroll(rt, clock, 80)
    group: Workers = workers(postgres_url, SMTP_URL=smtp_url, REDIS_URL=restartable_redis.url)
    kills: list[int] = []

    def kill_the_sender(_recipient: str, session: object) -> None:
        # The server has the message; its sender is killed before the 250 reaches it, and a fresh worker
        # takes its place (with the tick, if the victim ran it).
        if smtp.count() % EVERY or len(kills) >= KILLS:
            return
        victim = socket_owner(session.peer[1], [p.pid for p in group.alive()])  # type: ignore[attr-defined]
        if victim is None:
            return
        kill_tree(victim)
        kills.append(victim)
        group.start(1, tick=victim in group.ticking)

    smtp.on_accept = kill_the_sender
    group.start(1, tick=True)
    group.start(3)
    outcome = judge(rt, smtp, f"{KILLS} SIGKILLs mid-send, 4 workers (pg)", drain(rt, 240))
    assert len(kills) == KILLS
    assert_exactly_once(rt, smtp, outcome)
    assert outcome.sent == 80
    # Each kill left one message in flight that the server had: sent again, on the record, and nothing else.
    assert sum(outcome.duplicates.values()) == len(outcome.interrupted) == KILLS


def test_workers_killed_at_random_moments_resend_only_in_the_documented_window(
        make_runtime, postgres_url, faulty_smtp, restartable_redis, workers, clock) -> None:
    """How often the window is hit when kills are not aimed: FAULT_KILLS SIGKILLs at random moments while
    4 workers send FAULT_CONTACTS messages (docs/delivery.md quotes a run with 20 and 2,000)."""
    kills, contacts = int(os.environ.get("FAULT_KILLS", "5")), int(os.environ.get("FAULT_CONTACTS", "200"))
    smtp, smtp_url = faulty_smtp
    rt = make_runtime(postgres_url)
    enroll(rt, clock, contacts)
    group: Workers = workers(postgres_url, SMTP_URL=smtp_url, REDIS_URL=restartable_redis.url, BATCH_SIZE="20")
    group.start(1, tick=True)
    group.start(3)
    chaos = random.Random(15)
    killed: list[int] = []

    def kill_now_and_then() -> None:
        while smtp.count() == 0:  # from the first message on (the workers take seconds to start)
            time.sleep(0.1)
        while len(killed) < kills and not settled(rt):
            time.sleep(chaos.uniform(0.2, 1.0))  # a crash comes when it comes
            victim = chaos.choice(group.alive())
            kill_tree(victim.pid)
            killed.append(victim.pid)
            group.start(1, tick=victim.pid in group.ticking)

    killer = threading.Thread(target=kill_now_and_then)
    killer.start()
    drained = drain(rt, 600)
    killer.join()
    outcome = judge(rt, smtp, f"{len(killed)} random SIGKILLs, 4 workers, {contacts} (pg)", drained)
    assert_exactly_once(rt, smtp, outcome)
    assert outcome.sent == contacts
