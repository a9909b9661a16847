"""The reputation guard on a run of 10,000 sends with 3% hard bounces and 0.2% complaints.

    python bench/deliverability_run.py [--n 10000] [--database sqlite|postgresql]

N contacts in the starter "customer" sequence (its first email goes at once, its second three days later)
are sent through the real path: the tick queues claim tokens in a private Redis, an RQ worker (SimpleWorker,
in this process) runs the batches over SMTP into an aiosmtpd relay. The relay accepts every message; for 3%
of the recipients it then writes a Postfix DSN (hard bounce, 5.1.1) and for 0.2% an ARF abuse report, and
hands them to `nurture bounces serve`'s SMTP endpoint: the real bounce path (VERP return path, signed;
suppression; events). The clock is nurture's injected clock, moved by this script: two seconds a round,
sixteen minutes when the guard has paused (the owner "looks" and runs resume-sending; the paused messages
wait a quarter of an hour), then five days for the second email.

When the guard first pauses, 100 people sign up (the transactional confirm-email sequence): their
confirmations must go while marketing waits.

It prints: sends, bounces and complaints applied, addresses suppressed, each pause (at which send, why),
the owner alerts, the confirmations sent while paused, the second email's skips, and the sends to an address
after it was suppressed (must be 0). Exit status 1 if an invariant fails, 2 on a setup error.
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import smtplib
import sys
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from aiosmtpd.controller import Controller  # noqa: E402
from dispatch import SetupError, enroll_bulk, free_port, postgres_database, start_redis  # noqa: E402
from harness import machine, project_env  # noqa: E402
from redis import Redis  # noqa: E402
from rq import SimpleWorker  # noqa: E402
from sqlalchemy import and_, func, select  # noqa: E402
from sqlmodel import Session  # noqa: E402

from nurture import jobs  # noqa: E402
from nurture.config import load_settings  # noqa: E402
from nurture.delivery import reputation  # noqa: E402
from nurture.delivery.bounce_server import start_server  # noqa: E402
from nurture.people.contacts import ContactInput, enroll, upsert_contact  # noqa: E402
from nurture.runtime import Runtime, build_runtime, use_runtime  # noqa: E402
from nurture.store.db import upgrade  # noqa: E402
from nurture.store.models import Delivery, Enrollment, SendingPause, Suppression  # noqa: E402
from tests.bounce_samples import arf_complaint, postfix_dsn  # noqa: E402  (real bytes, as Postfix and Yahoo write them)

OWNER = "owner@juniper.example"  # the starter lifecycle file's alerts: owner


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def fate(address: str) -> str | None:
    """3 in 100 recipients bounce hard, 1 in 500 complains (never both), by their number."""
    local = address.partition("@")[0]
    if not local.startswith("bench"):
        return None
    i = int(local[5:])
    if i % 100 in (7, 41, 77):
        return "hard"
    if i % 500 == 250:
        return "complaint"
    return None


class Relay:
    """Accepts everything; queues the returned mail that 3% / 0.2% of it causes, which a thread hands to the
    bounce endpoint as a relay would (MAIL FROM:<>)."""

    def __init__(self, endpoint: tuple[str, int]) -> None:
        self.endpoint = endpoint
        self.reports: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.received: list[tuple[str, datetime]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._feed, daemon=True).start()

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201
        data = envelope.original_content or envelope.content
        [rcpt] = envelope.rcpt_tos
        with self.lock:
            self.received.append((rcpt, datetime.now(UTC)))
        kind = fate(rcpt)
        if kind == "hard":
            self.reports.put((envelope.mail_from, postfix_dsn(envelope.mail_from, rcpt, data)))
        elif kind == "complaint":
            self.reports.put(("fbl@juniper.example", arf_complaint(envelope.mail_from, rcpt, data)))
        return "250 OK"

    def _feed(self) -> None:
        while True:
            rcpt, data = self.reports.get()
            try:
                with smtplib.SMTP(*self.endpoint) as client:
                    client.sendmail("", [rcpt], data)
            finally:
                self.reports.task_done()

    def count_to(self, address: str) -> int:
        with self.lock:
            return sum(1 for rcpt, _ in self.received if rcpt == address)


def due_count(rt: Runtime) -> int:
    with Session(rt.db) as session:
        return session.execute(select(func.count()).select_from(Enrollment).where(
            Enrollment.status == "active", Enrollment.due_at <= rt.clock())).scalar_one()


def open_pause(rt: Runtime) -> SendingPause | None:
    with Session(rt.db, expire_on_commit=False) as session:
        return session.execute(select(SendingPause).where(SendingPause.open_key == "open")).scalar_one_or_none()


def sign_up(rt: Runtime, n: int) -> list[str]:
    """n people sign up through a form: each gets the (transactional) confirmation."""
    sequence = rt.sequences.get("confirm-email")
    assert sequence is not None
    emails = [f"signup{i}@example.net" for i in range(n)]
    with Session(rt.db) as session:
        for email in emails:
            contact, _ = upsert_contact(session, ContactInput(email=email), rt.clock())
            enroll(session, contact, sequence, rt.clock())
        session.commit()
    return emails


def confirm_while_paused(rt: Runtime, relay: Relay, worker: SimpleWorker, log: dict) -> None:
    """100 sign-ups while marketing is paused, the clock standing still: their confirmations go in the
    next ticks (after the marketing the tick had already claimed, each deferred at once)."""
    log["signups"] = sign_up(rt, 100)
    for ticks in range(1, 21):
        jobs.tick()
        worker.work(burst=True)
        log["confirmed_while_paused"] = sum(relay.count_to(e) for e in log["signups"])
        log["confirm_ticks"] = ticks
        if log["confirmed_while_paused"] == len(log["signups"]) or open_pause(rt) is None:
            break


def run_until_done(rt: Runtime, relay: Relay, worker: SimpleWorker, clock: Clock, log: dict) -> None:
    """Tick, work, let the returned mail land; on a pause, record it, check confirmations go, resume."""
    for _ in range(10_000):
        jobs.tick()
        worker.work(burst=True)
        relay.reports.join()
        pause = open_pause(rt)
        if pause is not None:
            log["pauses"].append((pause.sends_total, pause.reason))
            if not log["signups"]:
                confirm_while_paused(rt, relay, worker, log)
            jobs.tick()  # sends the owner's alert
            reputation.resume(rt, "bench owner")
            clock.now += timedelta(minutes=16)
            continue
        if due_count(rt) == 0:
            return
        clock.now += timedelta(seconds=2)
    raise SetupError("the run did not finish in 10,000 rounds")


def sent_after_suppression(rt: Runtime) -> int:
    """Messages handed to the relay for an address after it was on the suppression list."""
    with Session(rt.db) as session:
        return session.execute(select(func.count()).select_from(Delivery).join(
            Suppression, and_(Suppression.address == Delivery.recipient, Delivery.sent_at > Suppression.created_at)
        )).scalar_one()


def figures(rt: Runtime) -> dict[str, int]:
    with Session(rt.db) as session:
        def count(*where: object) -> int:
            return session.execute(select(func.count()).select_from(Delivery).where(*where)).scalar_one()
        return {"first sent": count(Delivery.step_id == "thank-you", Delivery.sent_at.is_not(None)),
                "second sent": count(Delivery.step_id == "feedback", Delivery.sent_at.is_not(None)),
                "second skipped": count(Delivery.step_id == "feedback", Delivery.status == "skipped"),
                "bounced rows": count(Delivery.status == "bounced"),
                "suppressed": session.execute(select(func.count()).select_from(Suppression)).scalar_one()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nurture-deliverability-")))
        redis_url, _ = start_redis(tmp, stack)
        database = stack.enter_context(postgres_database()) if args.database == "postgresql" \
            else f"sqlite:///{tmp / 'nurture.db'}"
        relay_port, endpoint_port = free_port(), free_port()
        env = project_env(tmp, database, redis_url, smtp_url=f"smtp://127.0.0.1:{relay_port}",
                          BOUNCE_ADDRESS="bounces@juniper.example")
        clock = Clock(datetime(2026, 12, 7, 9, 0, tzinfo=UTC))
        rt = build_runtime(load_settings(env), clock=clock)
        upgrade(rt.db)
        use_runtime(rt)
        endpoint = start_server(rt, "127.0.0.1", endpoint_port)
        stack.callback(endpoint.stop)
        relay = Relay(("127.0.0.1", endpoint_port))
        controller = Controller(relay, hostname="127.0.0.1", port=relay_port)
        controller.start()
        stack.callback(controller.stop)
        enroll_bulk(rt, args.n)
        worker = SimpleWorker([jobs.dispatch_queue(rt)], connection=Redis.from_url(redis_url))
        log: dict = {"pauses": [], "signups": [], "confirmed_while_paused": 0}
        run_until_done(rt, relay, worker, clock, log)
        first_pauses = len(log["pauses"])
        clock.now += timedelta(days=5)  # the second email ("feedback": 3 days later, at the next 10:00)
        run_until_done(rt, relay, worker, clock, log)
        return report(rt, relay, log, first_pauses, args)


def report(rt: Runtime, relay: Relay, log: dict, first_pauses: int, args: argparse.Namespace) -> int:
    f = figures(rt)
    late = sent_after_suppression(rt)
    alerts = relay.count_to(OWNER)
    hard = sum(1 for i in range(args.n) if fate(f"bench{i:06d}@example.com") == "hard")
    complaints = sum(1 for i in range(args.n) if fate(f"bench{i:06d}@example.com") == "complaint")
    print(f"# {machine()}; database {args.database}; guard: 5% bounces / 0.1% complaints over the last 1000 "
          f"sends, judged from 200 sends on")
    print(f"first email sent: {f['first sent']} of {args.n}; hard bounces returned: {hard} ({hard / args.n:.1%}), "
          f"complaints: {complaints} ({complaints / args.n:.1%})")
    print(f"suppressed: {f['suppressed']} addresses (bounced rows: {f['bounced rows']})")
    for n, (at, why) in enumerate(log["pauses"], 1):
        phase = "first email" if n <= first_pauses else "second email"
        print(f"pause {n} ({phase}): at send {at}: {why}")
    print(f"owner alerts: {alerts} (one per pause: {alerts == len(log['pauses'])})")
    print(f"confirmations sent while marketing was paused: {log['confirmed_while_paused']} of {len(log['signups'])} "
          f"(within {log.get('confirm_ticks')} ticks of the sign-ups, the clock standing still)")
    print(f"second email: {f['second sent']} sent, {f['second skipped']} skipped (suppressed or unsubscribed)")
    print(f"sends to a suppressed address after its suppression: {late}")
    ok = (late == 0 and f["suppressed"] == hard + complaints and f["first sent"] == args.n
          and alerts == len(log["pauses"]) and log["confirmed_while_paused"] == len(log["signups"]) > 0
          and f["second skipped"] == f["suppressed"] and f["second sent"] == args.n - f["suppressed"])
    if not ok:
        with Session(rt.db) as session:
            rows = session.execute(select(Enrollment.sequence_id, Enrollment.step_id, Enrollment.status,
                                          Enrollment.due_at > rt.clock(), func.count())
                                   .group_by(Enrollment.sequence_id, Enrollment.step_id, Enrollment.status,
                                             Enrollment.due_at > rt.clock())).all()
        print("enrollments (sequence, step, status, due later, count):", rows)
    print("invariants: " + ("held" if ok else "BROKEN"))
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SetupError as exc:
        print(f"setup error: {exc}", file=sys.stderr)
        sys.exit(2)
