"""Dispatch throughput: nurture's send path against a bare smtplib loop, into the same local SMTP sink.

    python bench/dispatch.py [--n 20000] [--workers 2] [--database sqlite|postgresql] [--batch-size 200]

Enrolls N contacts in the starter "customer" sequence (its first step, "thank-you", waits 0s, so all N are
due at once), then:

  pipeline  the tick (nurture.jobs.tick, called in this process until everything is claimed) queues claim
            tokens in Redis; W `worker.py --no-tick` processes (started and registered before the clock
            starts) render, build and send them over SMTP into the sink, recording every delivery. The clock
            stops when the sink has counted N messages and the database shows N deliveries "sent".
  bare      one smtplib connection sending N pre-built messages of the same size and shape (one message
            composed by nurture's own email channel) to the same sink.

  bare pipelined  the same messages over one connection with MAIL, RCPT and DATA in one write (RFC 2920
            PIPELINING: the sink offers it, as real relays do, and nurture's client uses it where offered;
            smtplib does not): the like-for-like reference, printed as "like for like".

It prints the rates and, last, `ratio=<pipeline/bare>` (the issue's measure, against smtplib). Exit status 1
if the pipeline did not deliver exactly N messages (sink count, distinct recipients, delivery rows), 2 on a setup error.

Everything lives in a fresh temporary directory: the SQLite file (or, with --database postgresql, a fresh
database on postgresql://postgres@127.0.0.1:5432/postgres, dropped at the end), a private redis-server on a
free port, VAR_DIR, and a copy of the repository's sequences/, email_templates/ (etc.) as NURTURE_ROOT (a copy,
so an edit made in the working tree during a run cannot change what is measured). Nothing is written to the
repository. Workers, redis and the sink are stopped on exit, on error and on Ctrl-C.

`--profile OUT.prof` runs a different experiment: no worker processes; the batches are queued at once and one
in-process RQ SimpleWorker drains them under cProfile (the forking Worker runs jobs in a child that cProfile
cannot see), then the top functions are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `python bench/dispatch.py` from anywhere, even without the editable install

from redis import Redis  # noqa: E402
from rq import SimpleWorker, Worker  # noqa: E402
from rq.registry import FailedJobRegistry  # noqa: E402
from sqlalchemy import func, insert, select  # noqa: E402
from sqlmodel import Session  # noqa: E402

from nurture import jobs  # noqa: E402
from nurture.config import load_settings  # noqa: E402
from nurture.delivery import dispatch  # noqa: E402
from nurture.insight import sequence_stats  # noqa: E402
from nurture.rules import engine  # noqa: E402
from nurture.runtime import Runtime, build_runtime, use_runtime  # noqa: E402
from nurture.store.db import upgrade  # noqa: E402
from nurture.store.models import Contact, Delivery, Enrollment, EnrollmentStatus, Event  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from smtp_sink import Sink, free_port, start_sink  # noqa: E402

PG_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SEQUENCE = "customer"
CLK_TCK = os.sysconf("SC_CLK_TCK")


class SetupError(RuntimeError):
    pass


def code_version() -> str:
    """The commit measured, and whether nurture/ had uncommitted changes (figures depend on both)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "nurture", "worker.py"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit or 'unknown'}{' + uncommitted changes in nurture/' if dirty else ''}"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- processes ---------------------------------------------------------------------------------------------

def children_of(pid: int) -> list[int]:
    """Direct children of `pid`, from /proc (RQ's work horse calls setsid, so process groups miss it)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def descendants_of(pid: int) -> list[int]:
    result, todo = [], [pid]
    while todo:
        for child in children_of(todo.pop()):
            result.append(child)
            todo.append(child)
    return result


def cpu_seconds(pid: int, children: bool = True) -> float:
    """User+system CPU of `pid` (plus its reaped children, e.g. finished RQ work horses)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def stop_processes(processes: list[tuple[subprocess.Popen, str]], grace: float = 5.0) -> None:
    """SIGTERM all (RQ: warm shutdown), wait, then SIGKILL the survivors and everything they started."""
    running = [(p, name, descendants_of(p.pid)) for p, name in processes if p.poll() is None]
    for process, _, _ in running:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
    deadline = time.monotonic() + grace
    for process, name, family in running:
        try:
            process.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            log(f"{name} (pid {process.pid}) still running {grace:.0f} s after SIGTERM; killing it")
            family = sorted(set(family) | set(descendants_of(process.pid)))
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait(5)
        for pid in family:  # e.g. an RQ work horse orphaned mid-job (it runs in a session of its own)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def start_redis(directory: Path, stack: contextlib.ExitStack) -> tuple[str, subprocess.Popen]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        raise SetupError("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(directory)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    stack.callback(stop_processes, [(process, "redis-server")])
    url = f"redis://127.0.0.1:{port}/0"
    client = Redis.from_url(url)
    for _ in range(200):
        try:
            client.ping()
            return url, process
        except Exception:
            if process.poll() is not None:
                break
            time.sleep(0.05)
    raise SetupError(f"redis-server did not start on port {port}")


@contextlib.contextmanager
def postgres_database():
    import psycopg

    name = f"nurture_bench_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise SetupError(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}") from None
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- setup -------------------------------------------------------------------------------------------------

def copy_project(tmp: Path) -> None:
    """The repository's sequences and templates, copied to tmp/project (NURTURE_ROOT)."""
    for name in ("sequences", "email_templates", "sms_templates", "forms"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, tmp / "project" / name)


def bench_env(tmp: Path, database_url: str, redis_url: str, sink: Sink, batch_size: int,
              max_pending: int | None) -> dict[str, str]:
    env = {
        "NURTURE_ROOT": str(tmp / "project"),  # the starter sequences and templates, copied
        "VAR_DIR": str(tmp / "var"),  # nothing nurture writes goes to the repository
        "OUTBOX_DIR": str(tmp / "var" / "outbox"),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "EMAIL_BACKEND": "smtp",
        "SMTP_URL": sink.url,
        "BATCH_SIZE": str(batch_size),
        "QUEUE_NAME": "nurture-bench",
        "SECRET_KEY": "bench-secret-key-0123456789abcdef",
        "API_KEY": "bench-api-key-0123456789abcdef",
        "BASE_URL": "https://nurture.bench.example",
        "MAIL_FROM": "Juniper Pottery Studio <hello@juniper.example>",
        "POSTAL_ADDRESS": "Juniper Pottery Studio, 12 Kiln Lane, Portland, OR 97201, USA",
    }
    if max_pending is not None:
        env["MAX_PENDING_BATCHES"] = str(max_pending)
    return env


def _row(model: type, **values: object) -> dict:
    """A row for a bulk INSERT, with the model's own defaults for every column not given (so a column
    added to the model later does not break the benchmark)."""
    return model(**values).model_dump(exclude={"id"})


def enroll_bulk(rt: Runtime, n: int) -> str:
    """N contacts enrolled in the customer sequence, as nurture.people.contacts would leave them (contact row,
    enrollment at the first step, the two events), written with three bulk INSERTs. Returns the step id.

    The enrollment events mark N (contact, sequence) pairs for the funnel's rollup; they are folded here,
    before anything is timed, as they would have been over the days those contacts signed up: left to the
    worker's fold job, the setup's own backlog was folded inside the measured window and counted as a cost
    of sending (small: ~0.5 s of CPU at N=20,000)."""
    sequence = rt.sequences.get(SEQUENCE)
    if sequence is None:
        raise SetupError(f"sequence {SEQUENCE!r} is not loaded from {rt.settings.sequences_dir}")
    now = rt.clock()
    due = engine.first_due(sequence, now, engine.contact_zone(None))
    if due is None or due.at > now:
        raise SetupError(f"{SEQUENCE}: expected its first step to be due at once, got {due}")
    first_names = ["Ann", "Bo", "Chidi", "Dana", "Eun-ji", "Farid", "Greta", "Hugo", "Ines", "Jae"]
    contact = _row(Contact, email="x@example.com", fields={"class_name": "Wheel throwing for beginners"},
                   tags=["bench"], source="bench", created_at=now, updated_at=now)
    enrollment = _row(Enrollment, contact_id=0, sequence_id=sequence.id, sequence_version=sequence.version,
                      step_id=due.step_id, due_at=due.at, status=EnrollmentStatus.ACTIVE, created_at=now,
                      updated_at=now)
    created = _row(Event, contact_id=0, type="contact.created", data={"source": "bench"}, occurred_at=now,
                   created_at=now)
    enrolled = _row(Event, contact_id=0, type="sequence.enrolled", occurred_at=now, created_at=now,
                    data={"sequence": sequence.id, "version": sequence.version, "first_step": due.step_id})
    with Session(rt.db) as session:
        session.execute(insert(Contact), [
            {**contact, "email": f"bench{i:06d}@example.com", "first_name": first_names[i % 10],
             "last_name": f"Bench{i}"}
            for i in range(n)
        ])
        ids = session.execute(select(Contact.id).order_by(Contact.id)).scalars().all()
        session.execute(insert(Enrollment), [{**enrollment, "contact_id": cid} for cid in ids])
        session.execute(insert(Event), [{**event, "contact_id": cid} for cid in ids for event in (created, enrolled)])
        session.commit()
        due_now = session.execute(
            select(func.count()).select_from(Enrollment)
            .where(Enrollment.status == "active", Enrollment.due_at <= rt.clock())
        ).scalar_one()
    if due_now != n:
        raise SetupError(f"expected {n} due enrollments after setup, found {due_now}")
    sequence_stats.catch_up(rt, rounds=n // sequence_stats.FOLD_LIMIT + 2)
    if (left := sequence_stats.rollup_backlog(rt)) != 0:
        raise SetupError(f"the funnel's rollup still has {left} pairs to fold after setup")
    return due.step_id


def start_workers(count: int, env: dict[str, str], tmp: Path, stack: contextlib.ExitStack
                  ) -> list[tuple[subprocess.Popen, Path]]:
    # Not the whole environment: a DATABASE_URL or DKIM_* in the caller's shell must not leak into the
    # workers. PYTHONPATH and BENCH_* pass, for experiments (e.g. a sitecustomize that patches something).
    passed = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "PYTHONPATH")
    base = {k: v for k, v in os.environ.items() if k in passed or k.startswith("BENCH_")}
    workers: list[tuple[subprocess.Popen, Path]] = []
    stack.callback(lambda: stop_processes([(p, f"worker {i}") for i, (p, _) in enumerate(workers)]))
    for i in range(count):
        log_path = tmp / f"worker-{i}.log"
        with open(log_path, "wb") as out:
            process = subprocess.Popen([sys.executable, str(ROOT / "worker.py"), "--no-tick"], cwd=ROOT,
                                       env={**base, **env}, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)  # Ctrl-C is ours to handle, not theirs
        workers.append((process, log_path))
    return workers


def wait_for_workers(workers: list[tuple[subprocess.Popen, Path]], redis: Redis, queue_name: str,
                     timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check_workers(workers)
        listening = [w for w in Worker.all(connection=redis) if queue_name in w.queue_names()]
        if len(listening) >= len(workers):
            return
        time.sleep(0.1)
    raise SetupError(f"{len(workers)} workers did not register with RQ within {timeout:.0f} s")


def check_workers(workers: list[tuple[subprocess.Popen, Path]]) -> None:
    for process, log_path in workers:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise SetupError(f"worker pid {process.pid} exited with status {process.returncode}:\n{tail}")


# --- measurements ------------------------------------------------------------------------------------------

def sent_count(rt: Runtime) -> int:
    with Session(rt.db) as session:
        return session.execute(
            select(func.count()).select_from(Delivery).where(Delivery.status == "sent")
        ).scalar_one()


def run_pipeline(rt: Runtime, sink: Sink, n: int, workers: list[tuple[subprocess.Popen, Path]],
                 timeout: float, tick_every: float = 1.0) -> tuple[float, dict]:
    """Tick until all N are claimed, wait for the sink to count N and the database to show N sent.

    The tick runs here, every `tick_every` seconds: what the worker's cron does with TICK_SECONDS=1, the
    shortest it allows (the default is 5 s; MAX_PENDING_BATCHES x BATCH_SIZE = 4,000 messages queued at a
    time keep the workers fed either way). Its back-pressure returns 0 while the queue is full, so it is
    called until it has claimed all N. The sink's count is polled every 10 ms for the stop time.
    """
    base = sink.count
    stats = {"ticks": 0, "claimed": 0}
    start = time.perf_counter()
    deadline = start + timeout
    next_tick = start
    while sink.count - base < n:
        now = time.perf_counter()
        if stats["claimed"] < n and now >= next_tick:
            stats["claimed"] += jobs.tick()
            stats["ticks"] += 1
            next_tick = now + tick_every
        check_workers(workers)
        if now > deadline:
            raise TimeoutError(f"pipeline: only {sink.count - base} of {n} messages reached the sink in "
                               f"{timeout:.0f} s ({stats['claimed']} claimed)")
        time.sleep(0.01)
    while sent_count(rt) < n:  # the last batch commits "sent" right after the sink's 250
        if time.perf_counter() > deadline:
            raise TimeoutError(f"pipeline: the sink counted {n} but only {sent_count(rt)} deliveries are 'sent'")
        time.sleep(0.01)
    return time.perf_counter() - start, stats


def sample_message(rt: Runtime, delivery_id: int) -> tuple[str, bytes]:
    """One message exactly as the pipeline builds it (nurture's own composition), for the bare loop."""
    sequence = rt.sequences.get(SEQUENCE)
    assert sequence is not None
    step = sequence.steps[0]
    now = rt.clock()
    contact = Contact(id=delivery_id, email="bare@example.com", first_name="Ann", last_name="Bench0",
                      fields={"class_name": "Wheel throwing for beginners"}, tags=["bench"], created_at=now,
                      updated_at=now)
    try:
        from nurture.delivery.channels import channel_for
    except ImportError:  # before the send path went through channels
        message = dispatch.compose_email(rt, contact, sequence, step, delivery_id, now)  # type: ignore[attr-defined]
    else:
        message = channel_for(step.channel).compose(rt, contact, sequence, step, delivery_id, now)
    return message.envelope_from, message.data


def run_bare(sink: Sink, n: int, envelope_from: str, data: bytes) -> float:
    """N pre-built messages over one smtplib connection. The bytes are shared (N distinct copies of a ~10 KB
    message would only add memory); each message has its own envelope recipient."""
    recipients = [f"bare{i:06d}@example.com" for i in range(n)]
    start = time.perf_counter()
    connection = smtplib.SMTP(sink.host, sink.port, timeout=30)
    for rcpt in recipients:
        connection.sendmail(envelope_from, [rcpt], data)
    connection.quit()
    return time.perf_counter() - start


def run_bare_pipelined(sink: Sink, n: int, envelope_from: str, data: bytes) -> float:
    """The same N messages over one connection, MAIL, RCPT and DATA in one write (RFC 2920 PIPELINING, which
    the sink offers and nurture's client uses): the like-for-like reference for the pipeline, written with
    smtplib's own send and getreply and nothing else."""
    recipients = [f"barep{i:06d}@example.com" for i in range(n)]
    stuffed = data.replace(b"\n.", b"\n..")
    stuffed = (b"." if stuffed.startswith(b".") else b"") + stuffed + (b"" if stuffed.endswith(b"\r\n") else b"\r\n")
    stuffed += b".\r\n"
    start = time.perf_counter()
    connection = smtplib.SMTP(sink.host, sink.port, timeout=30)
    connection.ehlo()
    assert connection.has_extn("pipelining"), "the sink does not offer PIPELINING"
    for rcpt in recipients:
        connection.send(f"MAIL FROM:<{envelope_from}> SIZE={len(data)}\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n")
        replies = [connection.getreply()[0] for _ in range(3)]
        if replies != [250, 250, 354]:
            raise SetupError(f"the sink answered {replies} to a pipelined envelope")
        connection.send(stuffed)
        if (reply := connection.getreply())[0] != 250:
            raise SetupError(f"the sink answered {reply} to a message")
    connection.quit()
    return time.perf_counter() - start


def verify(rt: Runtime, n: int, first_step: str, sink_count: int, sink_distinct: int, redis: Redis,
           queue_name: str) -> list[str]:
    problems = []
    if sink_count != n:
        problems.append(f"the sink counted {sink_count} messages during the pipeline, expected {n}")
    if sink_distinct != n:
        problems.append(f"the sink saw {sink_distinct} distinct recipients during the pipeline, expected {n}")
    with Session(rt.db) as session:
        by_status = dict(session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all())
        per_enrollment = session.execute(
            select(func.count(func.distinct(Delivery.enrollment_id))).where(Delivery.status == "sent")
        ).scalar_one()
        moved = session.execute(
            select(func.count()).select_from(Enrollment)
            .where(Enrollment.step_id.is_distinct_from(first_step), Enrollment.status.in_(("active", "completed")),
                   Enrollment.claim_token.is_(None))
        ).scalar_one()
    if by_status != {"sent": n}:
        problems.append(f"deliveries by status: {by_status}, expected {{'sent': {n}}}")
    if per_enrollment != n:
        problems.append(f"{per_enrollment} enrollments have a 'sent' delivery, expected {n}")
    if moved != n:
        problems.append(f"{moved} enrollments moved past {first_step!r} with their claim released, expected {n}")
    failed = FailedJobRegistry(queue_name, connection=redis).count
    if failed:
        problems.append(f"{failed} RQ jobs failed")
    return problems


def profile_one_worker(rt: Runtime, n: int, out: Path, top: int) -> None:
    """Queue every batch, then drain them with one in-process SimpleWorker under cProfile. The profiler's
    clock is this process's CPU time, so time spent waiting (for the sink's replies, for the SQLite lock,
    for a core on a busy machine) is left out: what remains is what the worker itself costs."""
    redis = rt.redis_connection()
    queue = jobs.dispatch_queue(rt)
    claimed = dispatch.claim_batches(rt, lambda token: jobs.enqueue_batch(rt, queue, token), max_batches=10**6)
    log(f"profile: {claimed} enrollments claimed in {queue.count} batches; draining with one SimpleWorker")
    worker = SimpleWorker([queue], connection=redis)
    profiler = cProfile.Profile(time.process_time)
    start, cpu = time.perf_counter(), time.process_time()
    profiler.enable()
    worker.work(burst=True, logging_level="WARNING")
    profiler.disable()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    profiler.dump_stats(str(out))
    sent = sent_count(rt)
    print(f"profile: one in-process worker sent {sent} messages in {elapsed:.1f} s, {1000 * cpu / max(sent, 1):.2f} ms "
          f"CPU per message under cProfile (which inflates Python-heavy code); stats in {out}")
    for key in ("cumulative", "tottime"):
        buffer = io.StringIO()
        pstats.Stats(str(out), stream=buffer).sort_stats(key).print_stats(top)
        text = buffer.getvalue()
        print(f"--- top {top} by {key} (CPU seconds) ---")
        print(text[text.find("   ncalls"):] if "   ncalls" in text else text)


def _terminated(signum: int, _frame: object) -> None:
    log("bench: terminated; stopping everything it started")
    sys.exit(128 + signum)


# --- main --------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20000, help="messages (contacts enrolled); default 20000")
    parser.add_argument("--workers", type=int, default=2, help="worker.py --no-tick processes; default 2")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--batch-size", type=int, default=200, help="BATCH_SIZE; default 200")
    parser.add_argument("--max-pending", type=int, default=None,
                        help="MAX_PENDING_BATCHES (default: nurture's own default)")
    parser.add_argument("--timeout", type=float, default=None, help="give up on the pipeline after this many s")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (worker logs)")
    parser.add_argument("--profile", type=Path, metavar="OUT.prof",
                        help="instead: profile one in-process worker draining all N (see above)")
    parser.add_argument("--top", type=int, default=35, help="rows of the profile to print")
    args = parser.parse_args(argv)
    if args.n < 1 or args.workers < 1 or args.batch_size < 1:
        parser.error("--n, --workers and --batch-size must be positive")

    # Ctrl-C (even when started with SIGINT ignored, as `cmd &` does) and SIGTERM unwind the stack, so
    # every process this run started is stopped.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminated)
    timeout = args.timeout or max(600.0, args.n / 5)  # generous: a slow run is a result too
    with contextlib.ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="nurture-bench-"))
        if args.keep:
            log(f"keeping {tmp}")
        else:
            stack.callback(shutil.rmtree, tmp, True)
        try:
            redis_url, _redis_process = start_redis(tmp, stack)
            sink = start_sink(sample_path=str(tmp / "pipeline-sample.eml"))
            stack.callback(sink.close)
            if args.database == "postgresql":
                database_url = stack.enter_context(postgres_database())
            else:
                database_url = f"sqlite:///{tmp / 'nurture.db'}"
            copy_project(tmp)
            env = bench_env(tmp, database_url, redis_url, sink, args.batch_size, args.max_pending)
            settings = load_settings(env)
            for path in (settings.var_dir, settings.outbox_dir, settings.sequences_dir, settings.templates_dir):
                if tmp.resolve() not in path.resolve().parents:
                    raise SetupError(f"{path} is outside the benchmark's temporary directory")
            rt = build_runtime(settings)
            stack.callback(rt.db.dispose)
            upgrade(rt.db)  # once, here: the workers' own upgrade() is then a no-op
            use_runtime(rt)
            stack.callback(use_runtime, None)
            redis = rt.redis_connection()

            log(f"setup: code {code_version()}; {os.cpu_count()} cores, load average "
                f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
            started = time.perf_counter()
            first_step = enroll_bulk(rt, args.n)
            log(f"setup: {args.n} contacts enrolled in {SEQUENCE}/{first_step} in "
                f"{time.perf_counter() - started:.1f} s ({args.database}, {tmp})")

            if args.profile:
                profile_one_worker(rt, args.n, args.profile, args.top)
                return 0

            started = time.perf_counter()
            workers = start_workers(args.workers, env, tmp, stack)
            wait_for_workers(workers, redis, settings.queue_name)
            log(f"setup: {args.workers} workers listening after {time.perf_counter() - started:.1f} s")
        except (SetupError, RuntimeError) as exc:  # RuntimeError: the sink did not start
            log(f"bench: setup failed: {exc}")
            return 2

        cpu_before = {"workers": sum(cpu_seconds(p.pid) for p, _ in workers),
                      "sink": cpu_seconds(sink.process.pid), "bench": sum(os.times()[:2])}
        try:
            elapsed, stats = run_pipeline(rt, sink, args.n, workers, timeout)
        except (TimeoutError, SetupError) as exc:
            log(f"bench: {exc}")
            for i, (_, log_path) in enumerate(workers):
                log(f"--- worker {i} log tail ---\n{log_path.read_text(errors='replace')[-2000:]}")
            return 1
        cpu = {"workers": sum(cpu_seconds(p.pid) for p, _ in workers) - cpu_before["workers"],
               "sink": cpu_seconds(sink.process.pid) - cpu_before["sink"],
               "bench": sum(os.times()[:2]) - cpu_before["bench"]}
        time.sleep(0.5)  # anything sent late or twice would show up in the count now
        pipeline_count, pipeline_distinct = sink.count, sink.distinct
        problems = verify(rt, args.n, first_step, pipeline_count, pipeline_distinct, redis, settings.queue_name)
        pipeline_rate = args.n / elapsed
        print(f"pipeline: {args.n} messages in {elapsed:.1f} s = {pipeline_rate:.0f}/s "
              f"({args.workers} workers, batch {args.batch_size}, {args.database}; {stats['ticks']} ticks)",
              flush=True)
        print("  cpu during pipeline: " + ", ".join(
            f"{name} {seconds:.1f} s ({1000 * seconds / args.n:.2f} ms/msg)" for name, seconds in cpu.items())
            + f"; wall x cores = {elapsed * (os.cpu_count() or 1):.1f} s", flush=True)

        envelope_from, data = sample_message(rt, args.n + 1)
        captured = tmp / "pipeline-sample.eml"
        size_note = f"; a pipeline message was {captured.stat().st_size} bytes" if captured.exists() else ""
        before_bare = sink.count
        sink_cpu = cpu_seconds(sink.process.pid)
        bench_cpu = sum(os.times()[:2])
        bare_elapsed = run_bare(sink, args.n, envelope_from, data)
        sink_cpu = cpu_seconds(sink.process.pid) - sink_cpu
        bench_cpu = sum(os.times()[:2]) - bench_cpu
        bare_rate = args.n / bare_elapsed
        if sink.count - before_bare != args.n:
            problems.append(f"the sink counted {sink.count - before_bare} bare messages, expected {args.n}")
        print(f"bare smtplib: {args.n} messages in {bare_elapsed:.1f} s = {bare_rate:.0f}/s "
              f"(one connection, {len(data)}-byte message{size_note})", flush=True)
        print(f"  cpu during bare: client {bench_cpu:.1f} s ({1000 * bench_cpu / args.n:.2f} ms/msg), "
              f"sink {sink_cpu:.1f} s ({1000 * sink_cpu / args.n:.2f} ms/msg)", flush=True)
        before_piped, sink_cpu, bench_cpu = sink.count, cpu_seconds(sink.process.pid), sum(os.times()[:2])
        piped_rate = args.n / run_bare_pipelined(sink, args.n, envelope_from, data)
        sink_cpu, bench_cpu = cpu_seconds(sink.process.pid) - sink_cpu, sum(os.times()[:2]) - bench_cpu
        if sink.count - before_piped != args.n:
            problems.append(f"the sink counted {sink.count - before_piped} pipelined messages, expected {args.n}")
        print(f"bare pipelined: {args.n} messages = {piped_rate:.0f}/s (MAIL, RCPT and DATA in one write, as "
              f"nurture's client sends them); cpu: client {1000 * bench_cpu / args.n:.2f} ms/msg, sink "
              f"{1000 * sink_cpu / args.n:.2f} ms/msg", flush=True)
        print(f"like for like: pipeline / bare pipelined = {pipeline_rate / piped_rate:.2f}", flush=True)
        for problem in problems:
            print(f"FAILED: {problem}", flush=True)
        print(f"ratio={pipeline_rate / bare_rate:.2f}", flush=True)
        return 1 if problems else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("bench: interrupted; everything it started has been stopped")
        sys.exit(130)
