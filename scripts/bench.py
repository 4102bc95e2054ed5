"""`make bench`: Meterline's performance targets, measured on a live stack of this machine.

    make bench                                            # 3 runs, about 20 minutes
    BENCH_RUNS=1 BENCH_SECONDS=5 BENCH_SOAK_SECONDS=40 make bench    # about 2 minutes
    .venv/bin/python scripts/bench.py --scale-out         # 1, 2, 4 workers; 2 daphne processes

Starts the integration tests' stack (devtools/stack.py: Redis, PostgreSQL,
daphne, rating workers, Celery) in a temp dir and drives it with
scripts/loadgen.py, real WebSocket clients (clients/device.py) in a process of
their own. Each run measures, on the same stack, with a fresh account each time:

- the raw limits (scripts/raw_limits.py): channels-redis send/receive msg/s,
  PostgreSQL insert rows/s with the ORM's bulk_create and with COPY;
- batched: 20 devices, 100 readings a frame, 4 frames in flight each;
- single: 50 devices, 1 reading a frame, 8 frames in flight each;
- paced soak: 1,000 readings/s of single-reading frames from 20 devices with
  the account's dashboard open, for BENCH_SOAK_SECONDS, sampling the RSS of
  daphne and every worker; latencies are over the whole soak.

Then it prints each figure as median (min-max) over the runs with its
target and PASS/FAIL (throughput and latency judged on the median; the
dashboard's completeness, memory and exactness on every run), the ratio of
each figure to the raw limit it competes with, and the CPU each process
spent per reading.

Settings (flags override the environment): BENCH_RUNS (3), BENCH_SECONDS (15,
each throughput run), BENCH_SOAK_SECONDS (300), BENCH_SOAK_WARMUP (30 s of the
soak before the memory baseline, at most half the soak), BENCH_RSS_INTERVAL
(5 s), BENCH_LIMIT_SECONDS (3, each raw limit), BENCH_WORKERS (2).
Exit status 0 when every target and check passes, 1 otherwise.
"""

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools.stack import Stack, pg_binary, tail  # noqa: E402

LOADGEN = ROOT / "scripts" / "loadgen.py"
RAW_LIMITS = ROOT / "scripts" / "raw_limits.py"

BATCHED_TARGET = 10_000  # readings/s
SINGLE_TARGET = 2_000  # readings/s
PACED_RATE = 1_000  # readings/s
ACK_P99_TARGET = 100  # ms
DASHBOARD_P99_TARGET = 150  # ms
RSS_GROWTH_LIMIT = 10  # percent
# The paced run must actually have carried its rate for its latencies to count.
PACED_RATE_FLOOR = 0.98
# (workers, daphne processes) of the scale-out table.
SCALE_OUT = [(1, 1), (2, 1), (4, 1), (2, 2)]


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    args: tuple[str, ...]


BATCHED = Scenario(
    "batched",
    "100 readings a frame, 20 devices, 4 frames in flight each",
    ("--devices", "20", "--batch", "100", "--in-flight", "4"),
)
SINGLE = Scenario(
    "single",
    "1 reading a frame, 50 devices, 8 frames in flight each",
    ("--devices", "50", "--batch", "1", "--in-flight", "8"),
)
PACED = Scenario(
    "paced",
    f"{PACED_RATE:,} readings/s in single-reading frames from 20 devices, dashboard open",
    ("--devices", "20", "--rate", str(PACED_RATE), "--dashboard"),
)


class BenchError(Exception):
    pass


# --- What the processes spend (psutil) ----------------------------------------------


def cpu_seconds(pid: int, *, reaped_children: bool = False) -> float:
    """User and system CPU of a process (and of its ended children, which it reaped)."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    spent = times.user + times.system
    if reaped_children:
        spent += times.children_user + times.children_system
    return spent


def postgres_cpu(stack: Stack) -> float:
    """The postmaster, its live backends, and (through its children's times) the ended ones."""
    postmaster = int((stack.pg_data / "postmaster.pid").read_text().split()[0])
    backends = psutil.Process(postmaster).children()
    return cpu_seconds(postmaster, reaped_children=True) + sum(
        cpu_seconds(backend.pid) for backend in backends
    )


def part_of(process_name: str) -> str:
    if process_name.startswith("daphne"):
        return "daphne"
    if process_name.startswith("worker-"):
        return "workers"
    if process_name in ("celery", "beat"):
        return "celery"
    return process_name


def cpu_by_part(stack: Stack) -> dict[str, float]:
    parts: dict[str, float] = {"postgres": postgres_cpu(stack)}
    for process in stack.processes:
        part = part_of(process.name)
        parts[part] = parts.get(part, 0.0) + cpu_seconds(process.popen.pid)
    return parts


def rss_mib(pid: int) -> float | None:
    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except psutil.NoSuchProcess:
        return None


class RssSampler(threading.Thread):
    """VmRSS of the given processes every `interval` seconds, until stopped."""

    def __init__(self, pids: dict[str, int], interval: float) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.interval = interval
        self.samples: list[tuple[float, dict[str, float | None]]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while True:
            now = time.monotonic() - started
            self.samples.append((now, {name: rss_mib(pid) for name, pid in self.pids.items()}))
            if self.stopping.is_set():
                return
            self.stopping.wait(self.interval)

    def stop(self) -> None:
        self.stopping.set()
        self.join()

    def summary(self, warmup: float) -> dict[str, dict]:
        """Per process: RSS after the warm-up, at the end, the most, and the change in %."""
        after = [values for t, values in self.samples if t >= warmup] or [self.samples[-1][1]]
        result = {}
        for name in self.pids:
            series = [values[name] for values in after if values[name] is not None]
            if not series:
                continue
            start, end = series[0], series[-1]
            result[name] = {
                "start_mib": round(start, 1),
                "end_mib": round(end, 1),
                "max_mib": round(max(series), 1),
                "growth_pct": round((end - start) / start * 100, 1),
                "worst_pct": round(max(abs(v - start) for v in series) / start * 100, 1),
                "samples": len(series),
            }
        return result


# --- Running the parts ----------------------------------------------------------


@contextlib.contextmanager
def running_stack(workers: int, webs: int = 1) -> Iterator[Stack]:
    stack = Stack(
        tmp=Path(tempfile.mkdtemp(prefix="meterline-bench-")),
        worker_count=workers,
        web_count=webs,
    )
    print(f"starting the stack: {workers} worker(s), {webs} daphne; logs in {stack.tmp / 'logs'}")
    finished = False
    try:
        stack.start()
        yield stack
        finished = True
    finally:
        stack.stop()
        if finished:
            shutil.rmtree(stack.tmp, ignore_errors=True)
        else:
            print(f"\nthe stack's logs are kept in {stack.tmp / 'logs'}", file=sys.stderr)
            for log in stack.log_files():
                if "Traceback" in log.read_text(errors="replace"):
                    print(f"--- tail of {log}\n{tail(log, 30)}", file=sys.stderr)


def run_loadgen(
    stack: Stack, scenario: Scenario, seconds: float, hooks: dict[str, Callable] | None = None
) -> dict:
    """One loadgen process against the stack; `hooks` are called on its marker lines."""
    hooks = hooks or {}
    command = [
        sys.executable,
        str(LOADGEN),
        *("--url", *stack.http_bases),
        *("--key", stack.operator_key),
        *("--seconds", str(seconds)),
        *scenario.args,
    ]
    lines = []
    with subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        for line in process.stdout:
            line = line.rstrip("\n")
            lines.append(line)
            if line in hooks:
                hooks[line]()
            elif not line.startswith(("{", "loadgen: ")):
                print(f"    {line}")
    results = [line for line in lines if line.startswith("{")]
    if not results:
        output = "\n".join(lines[-30:])
        raise BenchError(f"loadgen {scenario.name} failed ({process.returncode}):\n{output}")
    return json.loads(results[-1])


def measure(
    stack: Stack,
    scenario: Scenario,
    seconds: float,
    *,
    rss_interval: float | None = None,
    rss_warmup: float = 0,
) -> dict:
    """A loadgen run, with the CPU every part of the stack spent while it streamed."""
    print(f"  {scenario.name}: {scenario.title}, {seconds:g} s")
    marks: dict = {}

    def streaming() -> None:
        marks["cpu"] = cpu_by_part(stack)
        marks["t"] = time.monotonic()
        if rss_interval:
            pids = {
                p.name: p.popen.pid
                for p in stack.processes
                if p.name.startswith(("daphne", "worker-"))
            }
            marks["rss"] = RssSampler(pids, rss_interval)
            marks["rss"].start()

    def drained() -> None:
        if "rss" in marks:
            marks["rss"].stop()
        after = cpu_by_part(stack)
        marks["cpu"] = {part: after[part] - marks["cpu"].get(part, 0.0) for part in after}
        marks["wall"] = time.monotonic() - marks["t"]

    hooks = {"loadgen: streaming": streaming, "loadgen: drained": drained}
    result = run_loadgen(stack, scenario, seconds, hooks)
    if "wall" not in marks:
        raise BenchError(f"loadgen {scenario.name} printed a result but no start and end marks")
    result["cpu_s"] = {**marks["cpu"], "client": result["client_cpu_s"]}
    result["wall_s"] = marks["wall"]
    if "rss" in marks:
        result["rss"] = marks["rss"].summary(rss_warmup)
    return result


def measure_limits(stack: Stack, seconds: float) -> dict:
    completed = subprocess.run(
        [sys.executable, str(RAW_LIMITS), "--seconds", str(seconds)],
        cwd=ROOT,
        env=stack.app_env(),
        capture_output=True,
        text=True,
        timeout=seconds * 4 + 120,
    )
    if completed.returncode != 0:
        raise BenchError(f"raw_limits.py failed:\n{completed.stdout}\n{completed.stderr[-3000:]}")
    limits = json.loads(completed.stdout.strip().splitlines()[-1])
    print(
        f"  raw limits: channels-redis {limits['channels_redis_msg_per_s']:,.0f} msg/s, "
        f"PostgreSQL bulk_create {limits['pg_bulk_create_rows_per_s']:,.0f} rows/s, "
        f"COPY {limits['pg_copy_rows_per_s']:,.0f} rows/s"
    )
    return limits


def warm_up(stack: Stack) -> None:
    """The first frames on a fresh stack pay for imports and connections: not measured."""
    print("  warm-up (not counted)")
    run_loadgen(stack, BATCHED, 3)
    run_loadgen(stack, SINGLE, 2)


# --- Report ------------------------------------------------------------------------


def number(value: float | None, decimals: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{decimals}f}"


def spread(values: list[float | None], decimals: int = 0) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "n/a"
    middle = number(statistics.median(known), decimals)
    if len(values) == 1:
        return middle
    low, high = number(min(known), decimals), number(max(known), decimals)
    missing = f", {len(values) - len(known)} n/a" if len(known) < len(values) else ""
    return f"{middle} ({low} to {high}{missing})"


def median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def verdict(passed: bool | None) -> str:
    return "" if passed is None else ("PASS" if passed else "FAIL")


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        cells = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        print(f"  {cells}".rstrip())


def versions() -> str:
    packages = ["django", "channels", "channels-redis", "daphne", "redis", "psycopg"]
    found = [f"{name} {importlib.metadata.version(name)}" for name in packages]
    with contextlib.suppress(Exception):
        postgres = subprocess.run(
            [pg_binary("postgres"), "--version"], capture_output=True, text=True, check=True
        )
        found.append(postgres.stdout.strip().replace("postgres (PostgreSQL) ", "PostgreSQL "))
    return f"Python {platform.python_version()}, " + ", ".join(found)


def figure_rows(runs: list[dict]) -> tuple[list[list[str]], list[bool]]:
    """The target figures: [figure, median (min to max), target, PASS/FAIL] rows."""
    rows: list[list[str]] = []
    verdicts: list[bool] = []

    def row(label: str, values: list, target: str, passed: bool | None, decimals=0) -> None:
        rows.append([label, spread(values, decimals), target, verdict(passed)])
        if passed is not None:
            verdicts.append(passed)

    def at_least(values: list, floor: float) -> bool:
        return median(values) is not None and median(values) >= floor

    def at_most(values: list, ceiling: float) -> bool:
        return median(values) is not None and median(values) <= ceiling

    batched = [run["batched"]["readings_per_s"] for run in runs]
    single = [run["single"]["readings_per_s"] for run in runs]
    paced = [run["paced"] for run in runs]
    ack_p50 = [p["ack_ms"]["p50"] for p in paced]
    ack_p99 = [p["ack_ms"]["p99"] for p in paced]
    dashboards = [p["dashboard"] or {} for p in paced]
    dash_p50 = [d.get("charge_ms", {}).get("p50") for d in dashboards]
    dash_p99 = [d.get("charge_ms", {}).get("p99") for d in dashboards]
    missed = [d.get("missing") for d in dashboards]
    carried = [p["readings_per_s"] for p in paced]

    row(
        "batched: readings/s acked",
        batched,
        f">= {BATCHED_TARGET:,}",
        at_least(batched, BATCHED_TARGET),
    )
    row(
        "single: readings/s acked", single, f">= {SINGLE_TARGET:,}", at_least(single, SINGLE_TARGET)
    )
    row(
        "paced: readings/s acked",
        carried,
        f">= {PACED_RATE * PACED_RATE_FLOOR:,.0f} (the rate held)",
        at_least(carried, PACED_RATE * PACED_RATE_FLOOR),
    )
    row("paced: send to ack p50, ms", ack_p50, "", None, 1)
    row(
        "paced: send to ack p99, ms",
        ack_p99,
        f"<= {ACK_P99_TARGET}",
        at_most(ack_p99, ACK_P99_TARGET),
        1,
    )
    row("paced: send to dashboard charge p50, ms", dash_p50, "", None, 1)
    row(
        "paced: send to dashboard charge p99, ms",
        dash_p99,
        f"<= {DASHBOARD_P99_TARGET}",
        at_most(dash_p99, DASHBOARD_P99_TARGET),
        1,
    )
    row(
        "paced: acked readings the dashboard missed",
        missed,
        "0 in every run",
        all(m == 0 for m in missed),
    )
    for name in sorted({name for p in paced for name in p.get("rss", {})}):
        growth = [p.get("rss", {}).get(name, {}).get("growth_pct") for p in paced]
        worst = [p.get("rss", {}).get(name, {}).get("worst_pct") for p in paced]
        row(
            f"soak: {name} RSS change after warm-up, %",
            growth,
            f"within {RSS_GROWTH_LIMIT}% in every run",
            all(w is not None and w <= RSS_GROWTH_LIMIT for w in worst),
            1,
        )
    return rows, verdicts


def check_rows(runs: list[dict]) -> tuple[list[list[str]], list[bool]]:
    """Exactness in every loadgen run, and what the devices had to resend."""
    results = [run[kind] for run in runs for kind in ("batched", "single", "paced")]
    exact = all(r["total"] == r["expected_total"] for r in results)
    answered = all(r["unanswered"] == 0 for r in results)
    no_errors = all(r["errors"] == 0 for r in results)
    busy = sum(r["busy"] for r in results)
    resent = sum(r["resent_unanswered"] for r in results)
    duplicates = sum(r["duplicates"] for r in results)
    repeated = sum((run["paced"]["dashboard"] or {}).get("repeated", 0) for run in runs)
    rows = [
        ["charged total == usage acked, every run", verdict(exact)],
        ["every reading answered, every run", verdict(answered)],
        ["no error answers", verdict(no_errors)],
        [f"readings answered busy (resent): {busy:,}; resent unanswered: {resent:,}", ""],
        [f"acked as duplicates (after a resend): {duplicates:,}", ""],
        [f"readings in more than one dashboard charge event: {repeated:,}", ""],
    ]
    return rows, [exact, answered, no_errors]


def ratio_rows(runs: list[dict]) -> list[list[str]]:
    """Each figure over the raw limit it competes with, per run (same run's limits)."""

    def ratios(kind: str, key: str, per_frame: int = 1) -> list[float | None]:
        values = []
        for run in runs:
            limit = run["limits"][key]
            values.append(run[kind]["readings_per_s"] / per_frame / limit if limit else None)
        return values

    redis = "channels_redis_msg_per_s"
    bulk = "pg_bulk_create_rows_per_s"
    copy = "pg_copy_rows_per_s"
    return [
        ["batched readings/s / PostgreSQL bulk_create rows/s", spread(ratios("batched", bulk), 2)],
        ["batched readings/s / PostgreSQL COPY rows/s", spread(ratios("batched", copy), 2)],
        ["batched frames/s / channels-redis msg/s", spread(ratios("batched", redis, 100), 3)],
        [
            "single readings/s (= frames/s) / channels-redis msg/s",
            spread(ratios("single", redis), 2),
        ],
        ["single readings/s / PostgreSQL bulk_create rows/s", spread(ratios("single", bulk), 2)],
        ["single readings/s / PostgreSQL COPY rows/s", spread(ratios("single", copy), 2)],
        ["paced frames/s / channels-redis msg/s", spread(ratios("paced", redis), 2)],
    ]


def cpu_rows(runs: list[dict], kinds: tuple[str, ...]) -> tuple[list[str], list[list[str]]]:
    parts = ["daphne", "workers", "postgres", "redis", "celery", "client"]
    header = ["ms CPU per reading", *parts, "total", "cores busy"]
    rows = []
    for kind in kinds:
        per_part = {part: [] for part in [*parts, "total"]}
        busy = []
        for run in runs:
            result = run[kind]
            readings = result["answered"] or 1
            cpu = result["cpu_s"]
            for part in parts:
                per_part[part].append(cpu.get(part, 0.0) / readings * 1000)
            per_part["total"].append(sum(cpu.values()) / readings * 1000)
            busy.append(sum(cpu.values()) / result["wall_s"])
        cells = [f"{median(per_part[part]):.3f}" for part in [*parts, "total"]]
        rows.append([kind, *cells, f"{median(busy):.2f}"])
    return header, rows


def rss_rows(runs: list[dict]) -> list[list[str]]:
    rows = []
    for n, run in enumerate(runs, 1):
        for name, rss in sorted(run["paced"].get("rss", {}).items()):
            rows.append(
                [
                    str(n),
                    name,
                    f"{rss['start_mib']:.1f}",
                    f"{rss['end_mib']:.1f}",
                    f"{rss['max_mib']:.1f}",
                    f"{rss['growth_pct']:+.1f}",
                    f"{rss['worst_pct']:.1f}",
                ]
            )
    return rows


def report(config, runs: list[dict]) -> bool:
    print(f"\n=== Meterline bench: median (min to max) of {len(runs)} run(s) ===")
    print(f"  {os.cpu_count()} cores; {versions()}")
    print(
        f"  stack: {config.workers} rating worker(s), 1 daphne, Celery; load client in its own "
        f"process; throughput runs {config.seconds:g} s, paced soak {config.soak_seconds:g} s "
        f"(memory baseline after {config.soak_warmup:g} s)"
    )
    print(f"  batched = {BATCHED.title}\n  single  = {SINGLE.title}\n  paced   = {PACED.title}")

    print("\nRaw limits on this machine (measured in each run, the stack idle)")
    limits = [run["limits"] for run in runs]
    print_table(
        ["limit", "median (min to max)"],
        [
            [
                "channels-redis send then receive, 1 sender, 1 receiver, msg/s",
                spread([lim["channels_redis_msg_per_s"] for lim in limits]),
            ],
            [
                "PostgreSQL insert via ORM bulk_create, 100 a transaction, rows/s",
                spread([lim["pg_bulk_create_rows_per_s"] for lim in limits]),
            ],
            [
                "PostgreSQL insert via COPY, 100 a transaction, rows/s",
                spread([lim["pg_copy_rows_per_s"] for lim in limits]),
            ],
        ],
    )

    print("\nTargets")
    rows, verdicts = figure_rows(runs)
    print_table(["figure", "median (min to max)", "target", "result"], rows)

    print("\nAgainst the raw limits (ratio per run, to that run's limit)")
    print_table(["figure / limit", "median (min to max)"], ratio_rows(runs))

    print("\nCPU per reading while streaming (median of runs; cores busy = CPU s / wall s)")
    header, rows = cpu_rows(runs, ("batched", "single", "paced"))
    print_table(header, rows)

    print("\nMemory over the soak (MiB; change = end vs after warm-up; worst = largest |change|)")
    print_table(
        ["run", "process", "after warm-up", "end", "max", "change %", "worst %"], rss_rows(runs)
    )

    print("\nChecks")
    rows, check_verdicts = check_rows(runs)
    print_table(["check", "result"], rows)

    failed = verdicts.count(False) + check_verdicts.count(False)
    print(f"\n{'all targets met' if not failed else f'{failed} target(s) or check(s) FAILED'}")
    return not failed


# --- The two modes ----------------------------------------------------------------


def bench(config) -> bool:
    with running_stack(config.workers) as stack:
        warm_up(stack)
        runs = []
        for n in range(1, config.runs + 1):
            print(f"run {n}/{config.runs}")
            run = {"limits": measure_limits(stack, config.limit_seconds)}
            run["batched"] = measure(stack, BATCHED, config.seconds)
            run["single"] = measure(stack, SINGLE, config.seconds)
            run["paced"] = measure(
                stack,
                PACED,
                config.soak_seconds,
                rss_interval=config.rss_interval,
                rss_warmup=config.soak_warmup,
            )
            runs.append(run)
    return report(config, runs)


def scale_out(config) -> bool:
    table = []
    exact = True
    for workers, webs in SCALE_OUT:
        with running_stack(workers, webs) as stack:
            warm_up(stack)
            runs = []
            for n in range(1, config.runs + 1):
                print(f"run {n}/{config.runs}")
                runs.append(
                    {kind.name: measure(stack, kind, config.seconds) for kind in (BATCHED, SINGLE)}
                )
        results = [run[kind] for run in runs for kind in ("batched", "single")]
        exact = exact and all(r["ok"] for r in results)
        table.append(
            [
                str(workers),
                str(webs),
                spread([run["batched"]["readings_per_s"] for run in runs]),
                spread([run["single"]["readings_per_s"] for run in runs]),
                spread([run["single"]["ack_ms"]["p99"] for run in runs]),
            ]
        )
    print(
        f"\n=== Meterline scale-out: readings/s acked, "
        f"median (min to max) of {config.runs} run(s) ==="
    )
    print(f"  {os.cpu_count()} cores; {versions()}")
    print(f"  batched = {BATCHED.title}\n  single  = {SINGLE.title}\n")
    header = [
        "workers",
        "daphne processes",
        "batched readings/s",
        "single readings/s",
        "single ack p99 ms",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for row in table:
        print("| " + " | ".join(row) + " |")
    print(f"\nexact totals and every reading answered in every run: {verdict(exact)}")
    return exact


def env_default(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=int(env_default("BENCH_RUNS", 3)))
    parser.add_argument("--seconds", type=float, default=env_default("BENCH_SECONDS", 15))
    parser.add_argument(
        "--soak-seconds", type=float, default=env_default("BENCH_SOAK_SECONDS", 300)
    )
    parser.add_argument("--soak-warmup", type=float, default=env_default("BENCH_SOAK_WARMUP", 30))
    parser.add_argument("--rss-interval", type=float, default=env_default("BENCH_RSS_INTERVAL", 5))
    parser.add_argument(
        "--limit-seconds", type=float, default=env_default("BENCH_LIMIT_SECONDS", 3)
    )
    parser.add_argument("--workers", type=int, default=int(env_default("BENCH_WORKERS", 2)))
    parser.add_argument(
        "--scale-out",
        action="store_true",
        help="batched and single readings/s with 1, 2, 4 workers and with 2 daphne processes",
    )
    config = parser.parse_args()
    config.soak_warmup = min(config.soak_warmup, config.soak_seconds / 2)
    # A plain `kill` must still stop the stack: unwind through its `finally`.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        passed = scale_out(config) if config.scale_out else bench(config)
    except BenchError as exc:
        raise SystemExit(f"bench failed: {exc}") from exc
    raise SystemExit(0 if passed else 1)


if __name__ == "__main__":
    main()
