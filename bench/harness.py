"""What the P2-P5 benchmarks share: a runtime over a copy of the starter project, the machine's state, timing
by interleaved rounds, and the one summary line per target that `make bench` collects.

The process helpers (redis-server, a fresh PostgreSQL database, stopping a process tree) come from
bench/dispatch.py, so every bench starts and cleans up the same way.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `python bench/x.py` from anywhere, even without the editable install
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dispatch import SetupError, bench_env, code_version, copy_project, postgres_database, start_redis, stop_processes  # noqa: E402,F401

from nurture.config import load_settings  # noqa: E402
from nurture.runtime import Runtime, build_runtime  # noqa: E402

SUMMARY_PREFIX = "TARGET "  # bench/run_all.py collects the lines that start with it


class _NoSink:
    """bench_env wants an SMTP sink's URL; benches that send nothing give one that is never dialled."""

    url = "smtp://127.0.0.1:9"


def project_env(tmp: Path, database_url: str, redis_url: str = "redis://127.0.0.1:9/0", smtp_url: str | None = None,
                batch_size: int = 200, **extra: str) -> dict[str, str]:
    """The environment of a nurture process running on a copy of the starter project inside `tmp`."""
    copy_project(tmp)
    sink = _NoSink() if smtp_url is None else type("Sink", (), {"url": smtp_url})()
    return {**bench_env(tmp, database_url, redis_url, sink, batch_size, None), **extra}


def project_runtime(env: dict[str, str]) -> Runtime:
    return build_runtime(load_settings(env))


def machine() -> str:
    """The commit measured and how busy the machine was: every figure is quoted with both."""
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"code {code_version()}; {os.cpu_count()} cores, load average {load}"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def per_call_ms(fn: Callable[[], object], calls: int) -> float:
    """CPU time of one call, in ms, averaged over `calls` calls in a row. CPU, not wall time: on a shared
    machine the wall clock also counts the time other processes held the core (measured here: 3-10x the
    CPU figures at load 10), and these calls never wait for anything."""
    start = time.process_time()
    for _ in range(calls):
        fn()
    return 1000 * (time.process_time() - start) / calls


def interleaved(candidates: dict[str, tuple[Callable[[], object], int]], rounds: int) -> dict[str, float]:
    """The median over `rounds` of each candidate's per-call time, the candidates taking turns within every
    round: on a shared machine the load moves, and side by side is what makes the ratios mean something."""
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, (fn, calls) in candidates.items():
            samples[name].append(per_call_ms(fn, calls))
    return {name: statistics.median(values) for name, values in samples.items()}


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (p99 of 2,000 samples is the 20th largest)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-share * len(ordered) // 1))))
    return ordered[rank - 1]


def summary(target: str, figure: str, goal: str, met: bool) -> None:
    """The line `make bench` prints for this target."""
    print(f"{SUMMARY_PREFIX}{target}: {figure}  (target {goal}: {'met' if met else 'NOT met'}; "
          f"load {os.getloadavg()[0]:.1f})", flush=True)
