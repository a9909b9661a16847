"""`make bench`: every benchmark in turn, its own output as it goes, then one line per target.

    python bench/run_all.py [--quick]

P1 is bench/dispatch.py as it stands, run P1_RUNS times: one run's ratio moves by +-15% on this shared machine
(the bare loop alone has run anywhere from 400/s to 547/s in one hour), so the median of its `ratio=` lines is
held against the 0.8 target of issue 16, every run's printed beside it, with the like-for-like ratio (against a
bare loop that pipelines its commands as nurture's client does: bench/dispatch.py). P2-P7 and the
console funnel (bench/funnel.py) print their own `TARGET` lines (bench/harness.py). `--quick` runs smaller
sizes, to try the benches out: its figures are not the targets' (P3 among 100,000, P5 over 10,000
messages, P6 10,000 rows, the funnel at 100,000 deliveries).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PREFIX = "TARGET "
P1_TARGET = 0.8  # issue 16
P1_RUNS = 3
LIKE = "like for like: pipeline / bare pipelined = "


def benches(quick: bool) -> list[tuple[str, list[str]]]:
    return [
        *[(f"P1 dispatch, run {i + 1} of {P1_RUNS}", ["dispatch.py", *(["--n", "2000"] if quick else [])])
          for i in range(P1_RUNS)],
        ("P2 render", ["render.py"]),
        ("P3 tick", ["tick.py", *(["--large", "100000", "--repeat", "3"] if quick else [])]),
        ("P4 intake", ["intake.py", *(["--seconds", "3", "--steady-seconds", "10"] if quick else [])]),
        ("P5 memory", ["memory.py", *(["--n", "10000", "--window", "2000"] if quick else [])]),
        ("P6 import", ["import.py", *(["--rows", "10000"] if quick else [])]),
        ("P7 contact search", ["contact_search.py", *(["--n", "100000", "--repeat", "3"] if quick else [])]),
        ("Console funnel", ["funnel.py", "--database", "postgresql", *(["--deliveries", "100000"] if quick else [])]),
    ]


def run(name: str, args: list[str]) -> list[str]:
    """Run one bench, echoing its output; return its summary lines (a failure is a line too)."""
    print(f"=== {name}: {' '.join(args)}", flush=True)
    process = subprocess.Popen([sys.executable, str(HERE / args[0]), *args[1:]], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        print(line, end="", flush=True)
        lines.append(line.rstrip("\n"))
    status = process.wait()
    found = [line[len(PREFIX):] for line in lines if line.startswith(PREFIX)]
    ratio = [line for line in lines if line.startswith("ratio=")]
    like = [line[len(LIKE):] for line in lines if line.startswith(LIKE)]
    if name.startswith("P1") and ratio and status == 0:
        found = [f"P1 ratio={ratio[-1].split('=')[1]} like-for-like={like[-1] if like else '-'} "
                 f"load={os.getloadavg()[0]:.1f}"]
    if status != 0 or not found:
        found.append(f"{name}: exited with status {status}")
    return found


def p1_summary(results: list[str]) -> list[str]:
    """P1's runs folded into one line: the median ratio against the target, each run's figures beside it."""
    runs = [line for line in results if line.startswith("P1 ratio=")]
    if not runs:
        return results
    ratios = [float(line.split()[1].split("=")[1]) for line in runs]
    median = statistics.median(ratios)
    met = "met" if median >= P1_TARGET and len(runs) == P1_RUNS else "NOT met"
    each = "; ".join(line[len("P1 "):] for line in runs)
    line = (f"P1 dispatch: median ratio={median:.2f} of {len(runs)} runs (target >= {P1_TARGET}: {met}) [{each}]")
    first = results.index(runs[0])
    rest = [r for r in results if r not in runs]
    return [*rest[:first], line, *rest[first:]]


def main() -> int:
    quick = "--quick" in sys.argv[1:]
    results = [line for name, args in benches(quick) for line in run(name, args)]
    results = p1_summary(results)
    print("\n=== targets" + (" (quick run: smaller sizes, not the targets' figures)" if quick else ""))
    for line in results:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
