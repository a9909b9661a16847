"""P5 memory: a worker's memory while it sends 100,000 messages.

    python bench/memory.py [--n 100000] [--database sqlite|postgresql] [--batch-size 200] [--every 0.25]

Set up as bench/dispatch.py does (N contacts due at once in the starter customer sequence, a private
redis-server, the local SMTP sink in a process of its own, a fresh SQLite file or PostgreSQL database), then
ONE `worker.py --no-tick` process drains them while this process ticks once a second. Every `--every`
seconds it reads, from /proc, the worker's processes: the worker itself, RQ's scheduler (a child that lives
as long as the worker) and the work horse RQ forks for each batch. For each, RSS and PSS (smaps_rollup: PSS
splits a page shared by n processes n ways; the three share ~100 MB of imported code, which a sum of their
RSS would count three times).

Printed: the peak of the largest single process's RSS, the peak of the worker's PSS (all its processes
together: what the worker costs the machine), and both again during the first and the last `--window`
(10,000) messages. Targets: both peaks < 150 MB, and the last window's PSS peak no higher than the first's
(2% allowed for sampling: the sampling may catch a batch's horse at a different point of its work).
The run is checked like dispatch.py's: exactly N sent, N deliveries, no failed job. Ctrl-C (or SIGTERM)
stops everything and prints the figures for the messages sent so far, marked as partial.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from dispatch import check_workers, descendants_of, enroll_bulk, sent_count, start_workers, verify, wait_for_workers
from harness import SetupError, log, machine, postgres_database, project_env, project_runtime, start_redis, summary
from smtp_sink import start_sink

from nurture import jobs
from nurture.runtime import Runtime, use_runtime
from nurture.store.db import upgrade

MB = 1024 * 1024
LIMIT_MB, FLAT_TOLERANCE = 150.0, 0.02


def memory_of(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in bytes, or (0, 0) once it is gone."""
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0, 0
    values = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in rollup.splitlines()[1:]
              if line.split(":")[0] in ("Rss", "Pss")}
    return values.get("Rss", 0), values.get("Pss", 0)


@dataclass
class Samples:
    """(messages counted, largest single RSS, the worker's RSS, PSS of all the worker's processes)."""

    rows: list[tuple[int, int, int, int]] = field(default_factory=list)
    processes: int = 0  # the most processes the worker had at once

    def take(self, count: int, worker_pid: int) -> None:
        measured = [memory_of(pid) for pid in (worker_pid, *descendants_of(worker_pid))]
        self.processes = max(self.processes, len(measured))
        self.rows.append((count, max(rss for rss, _ in measured), measured[0][0], sum(pss for _, pss in measured)))

    def peak(self, low: int = 0, high: int = 1 << 62) -> dict[str, float]:
        rows = [r for r in self.rows if low <= r[0] < high] or [(0, 0, 0, 0)]
        return {"rss": max(r[1] for r in rows) / MB, "worker": max(r[2] for r in rows) / MB,
                "pss": max(r[3] for r in rows) / MB}


def drain(rt: Runtime, sink, n: int, worker, samples: Samples, every: float, timeout: float) -> float:  # noqa: ANN001
    """Tick once a second until all N are claimed; sample memory until the sink has N and the database N sent."""
    start = time.perf_counter()
    next_tick = next_report = start
    claimed = 0
    while sink.count < n or sent_count(rt) < n:
        now = time.perf_counter()
        if claimed < n and now >= next_tick:
            claimed += jobs.tick()
            next_tick = now + 1.0
        samples.take(sink.count, worker[0].pid)
        if now >= next_report:
            peak = samples.peak()
            log(f"memory: {sink.count:,} sent; peaks so far: RSS {peak['rss']:.1f} MB, PSS {peak['pss']:.1f} MB")
            next_report = now + 30
        check_workers([worker])
        if now - start > timeout:
            raise TimeoutError(f"only {sink.count} of {n} messages reached the sink in {timeout:.0f} s")
        time.sleep(every)
    return time.perf_counter() - start


def _terminated(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    # Ctrl-C even when started with SIGINT ignored (`cmd &` does that), and SIGTERM: a partial report.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminated)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--every", type=float, default=0.25, help="seconds between memory samples")
    parser.add_argument("--window", type=int, default=10_000, help="messages compared at the start and the end")
    args = parser.parse_args(argv)
    window = min(args.window, args.n // 2)
    with contextlib.ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="nurture-bench-memory-"))
        stack.callback(shutil.rmtree, tmp, True)
        try:
            redis_url, _ = start_redis(tmp, stack)
            sink = start_sink()
            stack.callback(sink.close)
            url = stack.enter_context(postgres_database()) if args.database == "postgresql" \
                else f"sqlite:///{tmp / 'nurture.db'}"
            env = project_env(tmp, url, redis_url, smtp_url=sink.url, batch_size=args.batch_size)
            rt = project_runtime(env)
            stack.callback(rt.db.dispose)
            upgrade(rt.db)
            use_runtime(rt)
            stack.callback(use_runtime, None)
            log(f"setup: {machine()}")
            first_step = enroll_bulk(rt, args.n)
            workers = start_workers(1, env, tmp, stack)
            wait_for_workers(workers, rt.redis_connection(), rt.settings.queue_name)
        except (SetupError, RuntimeError) as exc:
            log(f"bench: setup failed: {exc}")
            return 2
        samples = Samples()
        samples.take(0, workers[0][0].pid)
        started = time.perf_counter()
        try:
            elapsed = drain(rt, sink, args.n, workers[0], samples, args.every, max(1800.0, args.n / 10))
        except KeyboardInterrupt:  # a run cut short still says what it saw, as a partial result
            sent = sink.count
            log(f"bench: interrupted after {sent:,} messages; the figures below are for those only")
            return report(samples, sent, min(window, sent // 2), time.perf_counter() - started,
                          [f"interrupted after {sent:,} of {args.n:,} messages"])
        except (TimeoutError, SetupError) as exc:
            log(f"bench: {exc}\n{workers[0][1].read_text(errors='replace')[-2000:]}")
            return 1
        problems = verify(rt, args.n, first_step, sink.count, sink.distinct, rt.redis_connection(),
                          rt.settings.queue_name)
    return report(samples, args.n, window, elapsed, problems)


def report(samples: Samples, n: int, window: int, elapsed: float, problems: list[str]) -> int:
    peak, first, last = samples.peak(), samples.peak(0, window), samples.peak(n - window)
    print(f"memory: {n:,} messages in {elapsed:.0f} s ({n / elapsed:.0f}/s), {len(samples.rows):,} samples, "
          f"up to {samples.processes} processes (worker, RQ scheduler, work horse)", flush=True)
    print(f"peak: largest process RSS {peak['rss']:.1f} MB (the worker itself {peak['worker']:.1f} MB); "
          f"the worker's PSS {peak['pss']:.1f} MB", flush=True)
    print(f"first {window:,} messages: RSS {first['rss']:.1f} MB, PSS {first['pss']:.1f} MB; last {window:,}: "
          f"RSS {last['rss']:.1f} MB, PSS {last['pss']:.1f} MB", flush=True)
    for problem in problems:
        print(f"FAILED: {problem}", flush=True)
    flat = last["pss"] <= first["pss"] * (1 + FLAT_TOLERANCE)
    summary("P5 memory", f"peak RSS {peak['rss']:.0f} MB, PSS {peak['pss']:.0f} MB; last {window:,} "
            f"{last['pss']:.0f} MB against first {window:,} {first['pss']:.0f} MB (PSS)",
            f"< {LIMIT_MB:.0f} MB and flat", max(peak["rss"], peak["pss"]) < LIMIT_MB and flat and not problems)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
