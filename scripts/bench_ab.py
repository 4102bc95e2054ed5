"""Before and after in one sitting: `make bench`'s batched and single runs on the code of
a git revision and on this checkout, alternated, a fresh stack each time.

    .venv/bin/python scripts/bench_ab.py 6fb5ca9                 # 4 rounds of 8 s runs
    .venv/bin/python scripts/bench_ab.py 6fb5ca9 --rounds 2 --seconds 5
    .venv/bin/python scripts/bench_ab.py 6fb5ca9 --after 3961faf   # two revisions

Back-to-back runs on these machines drift by more than the 5% a change is judged by
(one commit gave 0.48 to 0.78 ms of server CPU per single-reading frame in one sitting),
so "before, then after" measures the drift as much as the change. Alternating before,
after, before, after spreads the drift over both. A revision is checked out in a
temporary git worktree and run with this checkout's virtualenv; its scripts/bench.py must
have running_stack, warm_up, measure, BATCHED and SINGLE (every revision since 6fb5ca9
does).

Prints each run as it ends, then per figure the median of each side and after / before:
readings/s acked, and the CPU per reading of the server processes (daphne, workers,
PostgreSQL, Redis: not the load client, whose code may differ between the two).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ("readings_per_s", "server_cpu_ms")


def one_stack(seconds: float) -> None:
    """In the checkout that is the working directory: one stack, warmed up, then batched
    and single once each; a JSON line per run."""
    sys.path[:0] = [os.getcwd(), os.path.join(os.getcwd(), "scripts")]
    import scripts.bench as bench

    with bench.running_stack(2) as stack:
        bench.warm_up(stack)
        for scenario in (bench.BATCHED, bench.SINGLE):
            result = bench.measure(stack, scenario, seconds)
            # As bench.cpu_per_reading, without the load client (and Celery, idle here).
            server = sum(v for k, v in result["cpu_s"].items() if k not in ("client", "celery"))
            row = {"scenario": scenario.name, "readings_per_s": round(result["readings_per_s"])}
            row["server_cpu_ms"] = round(1000 * server / (result["answered"] or 1), 4)
            print("ROW", json.dumps(row), flush=True)


def worktree(path: Path, rev: str) -> Path:
    subprocess.run(["git", "worktree", "add", "--detach", path, rev], cwd=ROOT, check=True)
    return path


def run_side(checkout: Path, seconds: float) -> list[dict]:
    command = [sys.executable, str(Path(__file__).resolve()), "--one", "--seconds", str(seconds)]
    done = subprocess.run(command, cwd=checkout, capture_output=True, text=True, check=False)
    rows = [json.loads(line[4:]) for line in done.stdout.splitlines() if line.startswith("ROW ")]
    if done.returncode or len(rows) != 2:
        raise SystemExit(
            f"the run in {checkout} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    return rows


def compare(rev: str, after_rev: str | None, rounds: int, seconds: float) -> None:
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory(prefix="meterline-ab-") as tmp:
        sides: dict[str, Path] = {}
        try:
            sides["before"] = worktree(Path(tmp) / "before", rev)
            sides["after"] = worktree(Path(tmp) / "after", after_rev) if after_rev else ROOT
            for round_ in range(1, rounds + 1):
                for side, checkout in sides.items():
                    for row in run_side(checkout, seconds):
                        runs[side].append(row)
                        print(f"round {round_} {side:6} {json.dumps(row)}", flush=True)
        finally:
            for checkout in sides.values():
                if checkout != ROOT:
                    subprocess.run(["git", "worktree", "remove", "--force", checkout], cwd=ROOT)
    after = after_rev or "this checkout"
    print(f"\nmedians of {rounds} rounds, {seconds:g} s runs: before ({rev}), after ({after})")
    for scenario in ("batched", "single"):
        for figure in FIGURES:
            a, b = (
                statistics.median(r[figure] for r in runs[side] if r["scenario"] == scenario)
                for side in ("before", "after")
            )
            print(f"  {scenario:8} {figure:15} {a:>10,.3f} {b:>10,.3f}   after/before {b / a:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rev", nargs="?", help="the code before (a git revision)")
    parser.add_argument("--after", help="the code after (default: this checkout)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one_stack(args.seconds)
    elif args.rev:
        compare(args.rev, args.after, args.rounds, args.seconds)
    else:
        parser.error("name the revision to compare with")


if __name__ == "__main__":
    main()
