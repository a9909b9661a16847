"""`make bench`: every benchmark in turn, its own output as it goes, then one line per target.

    python bench/run_all.py [--quick]

P1 is bench/dispatch.py as it stands (its last line, `ratio=...`, against the 0.6 target); P2-P7 and the
console funnel (bench/funnel.py) print their own `TARGET` lines (bench/harness.py). `--quick` runs smaller
sizes, to try the benches out: its figures are not the targets' (P3 among 100,000, P5 over 10,000
messages, P6 10,000 rows, the funnel at 100,000 deliveries).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PREFIX = "TARGET "
P1_TARGET = 0.6


def benches(quick: bool) -> list[tuple[str, list[str]]]:
    return [
        ("P1 dispatch", ["dispatch.py", *(["--n", "2000"] if quick else [])]),
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
    if name.startswith("P1") and ratio:
        value = float(ratio[-1].split("=")[1])
        met = "met" if value >= P1_TARGET and status == 0 else "NOT met"
        found = [f"P1 dispatch: {ratio[-1]} (target >= {P1_TARGET}: {met}; load {os.getloadavg()[0]:.1f})"]
    if status != 0 or not found:
        found.append(f"{name}: exited with status {status}")
    return found


def main() -> int:
    quick = "--quick" in sys.argv[1:]
    results = [line for name, args in benches(quick) for line in run(name, args)]
    print("\n=== targets" + (" (quick run: smaller sizes, not the targets' figures)" if quick else ""))
    for line in results:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
