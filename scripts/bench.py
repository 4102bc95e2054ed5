"""`make bench`: Meterline's performance targets, measured on a live stack of this machine.

    make bench                                            # 3 runs, about 35 minutes
    BENCH_RUNS=1 BENCH_SECONDS=5 BENCH_SOAK_SECONDS=40 make bench    # 6 to 11 minutes
    .venv/bin/python scripts/bench.py --scale-out         # 1, 2, 4 workers; 2 daphne processes

Starts the integration tests' stack (devtools/stack.py: Redis, PostgreSQL,
daphne, rating workers, Celery) in a temp dir and drives it with
scripts/loadgen.py, real WebSocket clients (clients/device.py) in a process of
their own. Each run measures, on the same stack, with a fresh account each time:

- the raw limits (scripts/raw_limits.py): channels-redis send/receive msg/s,
  PostgreSQL insert rows/s with the ORM's bulk_create and with COPY;
- batched: 20 devices, 100 readings a frame, 4 frames in flight each;
- single: 50 devices, 1 reading a frame, 8 frames in flight each;
- batched and single again on a prepaid account (loadgen --credit-control: a
  balance, a cut-off line and three alerts evaluated on every batch, none
  reached), each right after its plain run: credit control's cost is the ratio
  of the two in the same round;
- prepaid accounts: 20 prepaid accounts of one device and one dashboard each,
  single-reading frames, closed loop: what the crossings' shape carries;
- crossings (scripts/bench_credit.py): the same 20 accounts' shape, single
  readings paced at 1,000 readings/s in all (or half what prepaid accounts
  carried in this round, if that is less: then it says so), each reading that
  crosses a balance alert or the cut-off line timed to the dashboard's `alert`
  and the device's `cutoff`, for BENCH_CREDIT_SECONDS;
- OCPP (scripts/bench_ocpp.py): BENCH_OCPP_CLIENTS (500) charge points sending
  MeterValues once a second, then as many JSON devices, BENCH_OCPP_SECONDS each;
- webhooks (scripts/bench_webhooks.py, on a stack of its own: its producer writes
  events in its own process): 100 events to 100 endpoints, then 100 events/s to one
  for BENCH_WEBHOOK_SECONDS, beside plain POSTs/s to the same receiver;
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
(5 s), BENCH_LIMIT_SECONDS (3, each raw limit), BENCH_WORKERS (2),
BENCH_CREDIT_SECONDS (60, at most half the soak), BENCH_OCPP_CLIENTS (500),
BENCH_OCPP_SECONDS (BENCH_SECONDS, each phase; 0 leaves OCPP out),
BENCH_WEBHOOK_SECONDS (BENCH_SECONDS, the paced part; 0 leaves webhooks out).
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
BENCH_CREDIT = ROOT / "scripts" / "bench_credit.py"
BENCH_OCPP = ROOT / "scripts" / "bench_ocpp.py"
WEBHOOKS = ROOT / "scripts" / "bench_webhooks.py"

BATCHED_TARGET = 10_000  # readings/s
SINGLE_TARGET = 2_000  # readings/s
PACED_RATE = 1_000  # readings/s
ACK_P99_TARGET = 100  # ms
DASHBOARD_P99_TARGET = 150  # ms
RSS_GROWTH_LIMIT = 10  # percent
# The paced run must actually have carried its rate for its latencies to count.
PACED_RATE_FLOOR = 0.98
# Credit control: readings/s with it over without it, same shape, same round.
CREDIT_RATIO_TARGET = 0.90
# Crossings: send of the crossing reading to the dashboard's alert and the device's cutoff.
CROSSING_P99_TARGET = 100  # ms
CROSSING_ACCOUNTS = 20
CROSSING_CREDIT = 100  # each credit: an alert at 50 and a cut-off at 0, 50 readings apart
# Paced at PACED_RATE, or at this share of the single readings/s of the same round when
# that is less: beyond what the stack carries, latencies measure the queue.
CROSSING_RATE_SHARE = 0.5
OCPP_P99_TARGET = 100  # ms, MeterValues to CallResult
WEBHOOK_ENDPOINTS = 100
WEBHOOK_EVENTS = 100  # x 100 endpoints: 10,000 deliveries
WEBHOOK_RATE = 100  # events/s, one endpoint: the latency run
WEBHOOK_P99_TARGET = 200  # ms, commit to receiver, first attempts
# (workers, daphne processes) of the scale-out table.
SCALE_OUT = [(1, 1), (2, 1), (4, 1), (2, 2)]


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    args: tuple[str, ...]
    script: Path = LOADGEN  # or bench_credit.py: the same --url, --key, --seconds, markers


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
PREPAID = "on a prepaid account: a balance, a cut-off line, 3 alerts"
BATCHED_CC = Scenario("batched_cc", f"batched {PREPAID}", (*BATCHED.args, "--credit-control"))
SINGLE_CC = Scenario("single_cc", f"single {PREPAID}", (*SINGLE.args, "--credit-control"))
# The crossings' shape, closed loop: what it can carry on this machine in this round.
PREPAID_ACCOUNTS = Scenario(
    "prepaid_accounts",
    f"1 reading a frame, {CROSSING_ACCOUNTS} prepaid accounts of one device and one dashboard "
    "each, 16 frames in flight each",
    (
        *("--devices", str(CROSSING_ACCOUNTS), "--accounts", str(CROSSING_ACCOUNTS)),
        *("--batch", "1", "--in-flight", "16", "--dashboard", "--credit-control"),
    ),
)


def crossings_scenario(rate: float) -> Scenario:
    return Scenario(
        "crossings",
        f"{CROSSING_ACCOUNTS} prepaid accounts, one device and one dashboard each, single "
        f"readings at {rate:,.0f}/s in all, a credit of {CROSSING_CREDIT} at each cut-off",
        (
            *("--accounts", str(CROSSING_ACCOUNTS)),
            *("--rate", f"{rate:g}", "--credit", str(CROSSING_CREDIT)),
        ),
        BENCH_CREDIT,
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


def run_client(
    script: Path, args: list[str], hooks: dict[str, Callable] | None = None
) -> dict | list:
    """One load script: its last JSON line. `hooks` are called on its marker lines
    ("<script name>: ..."); its other lines are shown."""
    hooks = hooks or {}
    marker = f"{script.stem}: "
    command = [sys.executable, str(script), *args]
    lines = []
    with subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        for line in process.stdout:
            line = line.rstrip("\n")
            lines.append(line)
            if line.startswith(marker):
                if line in hooks:
                    hooks[line]()
            elif not line.startswith(("{", "[")):
                print(f"    {line}")
    results = [line for line in lines if line.startswith(("{", "["))]
    if not results:
        output = "\n".join(lines[-30:])
        raise BenchError(f"{script.name} {' '.join(args)} failed ({process.returncode}):\n{output}")
    return json.loads(results[-1])


def run_loadgen(
    stack: Stack, scenario: Scenario, seconds: float, hooks: dict[str, Callable] | None = None
) -> dict:
    """The scenario's script (loadgen.py or bench_credit.py) against every daphne."""
    args = ["--url", *stack.http_bases, "--key", stack.operator_key, "--seconds", str(seconds)]
    return run_client(scenario.script, [*args, *scenario.args], hooks)


class CpuWindow:
    """The CPU each part of the stack spent between `start` and `stop`, and the wall time."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.spent: dict[str, float] | None = None
        self.wall = 0.0

    def start(self) -> None:
        self.before = cpu_by_part(self.stack)
        self.started = time.monotonic()

    def stop(self) -> None:
        after = cpu_by_part(self.stack)
        self.spent = {part: after[part] - self.before.get(part, 0.0) for part in after}
        self.wall = time.monotonic() - self.started


def measure(
    stack: Stack,
    scenario: Scenario,
    seconds: float,
    *,
    rss_interval: float | None = None,
    rss_warmup: float = 0,
) -> dict:
    """A loadgen (or bench_credit) run, with the CPU every part of the stack spent while
    it streamed."""
    print(f"  {scenario.name}: {scenario.title}, {seconds:g} s")
    cpu = CpuWindow(stack)
    marks: dict = {}

    def streaming() -> None:
        cpu.start()
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
        cpu.stop()

    marker = scenario.script.stem
    hooks = {f"{marker}: streaming": streaming, f"{marker}: drained": drained}
    result = run_loadgen(stack, scenario, seconds, hooks)
    if cpu.spent is None:
        raise BenchError(f"{marker} {scenario.name} printed a result but no start and end marks")
    result["cpu_s"] = {**cpu.spent, "client": result["client_cpu_s"]}
    result["wall_s"] = cpu.wall
    if "rss" in marks:
        result["rss"] = marks["rss"].summary(rss_warmup)
    return result


def measure_ocpp(stack: Stack, clients: int, seconds: float) -> dict:
    """scripts/bench_ocpp.py's phases, one after the other: `clients` charge points with
    a MeterValues a second each ("ocpp"), then as many JSON devices with a reading a
    second ("ocpp_json"), with the CPU the stack spent in each. Nothing without it."""
    if not BENCH_OCPP.exists() or not seconds:
        return {}
    print(
        f"  ocpp: {clients} OCPP charge points, one MeterValues a second each, then as many "
        f"JSON devices, one reading a second each; {seconds:g} s each"
    )
    windows = {phase: CpuWindow(stack) for phase in ("ocpp", "json")}
    hooks = {}
    for phase, window in windows.items():
        hooks[f"bench_ocpp: streaming {phase}"] = window.start
        hooks[f"bench_ocpp: drained {phase}"] = window.stop
    args = ["--url", stack.http_base, "--key", stack.operator_key]
    args += ["--clients", str(clients), "--seconds", str(seconds)]
    try:
        results = run_client(BENCH_OCPP, args, hooks)
    except BenchError as failed:  # the other figures still count: a failed check
        return {"ocpp_failed": str(failed).splitlines()[0]}
    found = {}
    for result in results:
        window = windows[result["phase"]]
        if window.spent is None:
            raise BenchError(f"bench_ocpp {result['phase']}: a result but no start and end marks")
        result["cpu_s"] = {**window.spent, "client": result["client_cpu_s"]}
        result["wall_s"] = window.wall
        found["ocpp" if result["phase"] == "ocpp" else "ocpp_json"] = result
    return found


def measure_webhooks(seconds: float) -> dict:
    """scripts/bench_webhooks.py, on a stack of its own (its producer writes events in
    its own process): deliveries/s to WEBHOOK_ENDPOINTS endpoints, then commit to
    receiver paced at WEBHOOK_RATE events/s, beside plain POSTs/s to the same receiver."""
    if not WEBHOOKS.exists() or not seconds:
        return {}
    print(
        f"  webhooks (a stack of its own): {WEBHOOK_EVENTS} events to {WEBHOOK_ENDPOINTS} "
        f"endpoints as fast as they go, then {WEBHOOK_RATE} events/s for {seconds:g} s"
    )
    args = ["--endpoints", str(WEBHOOK_ENDPOINTS), "--events", str(WEBHOOK_EVENTS)]
    args += ["--rate", str(WEBHOOK_RATE), "--seconds", str(seconds)]
    try:
        return {"webhooks": run_client(WEBHOOKS, args)}
    except BenchError as failed:  # the other figures still count: a failed check
        return {"webhooks_failed": str(failed).splitlines()[0]}


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


class Targets:
    """Rows of the targets table, [figure, median (min to max), target, PASS/FAIL], and
    the verdicts among them."""

    def __init__(self) -> None:
        self.rows: list[list[str]] = []
        self.verdicts: list[bool] = []

    def row(self, label: str, values: list, target: str, passed: bool | None, decimals=0) -> None:
        self.rows.append([label, spread(values, decimals), target, verdict(passed)])
        if passed is not None:
            self.verdicts.append(passed)


def at_least(values: list, floor: float) -> bool:
    return median(values) is not None and median(values) >= floor


def at_most(values: list, ceiling: float) -> bool:
    return median(values) is not None and median(values) <= ceiling


def figure_rows(runs: list[dict], table: Targets) -> None:
    """The throughput and the paced soak's figures."""
    batched = [run["batched"]["readings_per_s"] for run in runs]
    single = [run["single"]["readings_per_s"] for run in runs]
    paced = [run["paced"] for run in runs]
    dashboards = [p["dashboard"] or {} for p in paced]
    missed = [d.get("missing") for d in dashboards]
    carried = [p["readings_per_s"] for p in paced]

    table.row(
        "batched: readings/s acked",
        batched,
        f">= {BATCHED_TARGET:,}",
        at_least(batched, BATCHED_TARGET),
    )
    table.row(
        "single: readings/s acked", single, f">= {SINGLE_TARGET:,}", at_least(single, SINGLE_TARGET)
    )
    credit_rows(runs, table)
    table.row(
        "paced: readings/s acked",
        carried,
        f">= {PACED_RATE * PACED_RATE_FLOOR:,.0f} (the rate held)",
        at_least(carried, PACED_RATE * PACED_RATE_FLOOR),
    )
    latency_rows(table, "paced: send to ack", [p["ack_ms"] for p in paced], ACK_P99_TARGET)
    latency_rows(
        table,
        "paced: send to dashboard charge",
        [d.get("charge_ms", {}) for d in dashboards],
        DASHBOARD_P99_TARGET,
    )
    table.row(
        "paced: acked readings the dashboard missed",
        missed,
        "0 in every run",
        all(m == 0 for m in missed),
    )
    soak_rows(paced, table)


def soak_rows(paced: list[dict], table: Targets) -> None:
    """Each process's RSS over the soak."""
    for name in sorted({name for p in paced for name in p.get("rss", {})}):
        growth = [p.get("rss", {}).get(name, {}).get("growth_pct") for p in paced]
        worst = [p.get("rss", {}).get(name, {}).get("worst_pct") for p in paced]
        table.row(
            f"soak: {name} RSS change after warm-up, %",
            growth,
            f"within {RSS_GROWTH_LIMIT}% in every run",
            all(w is not None and w <= RSS_GROWTH_LIMIT for w in worst),
            1,
        )


def latency_rows(table: Targets, label: str, figures: list[dict], p99_target: float | None):
    """p50 (no target) and p99 of a latency, in ms."""
    table.row(f"{label} p50, ms", [f.get("p50") for f in figures], "", None, 1)
    p99 = [f.get("p99") for f in figures]
    if p99_target is None:
        table.row(f"{label} p99, ms", p99, "", None, 1)
    else:
        table.row(f"{label} p99, ms", p99, f"<= {p99_target}", at_most(p99, p99_target), 1)


def credit_rows(runs: list[dict], table: Targets) -> None:
    """Credit control: readings/s with it against without it, in the same round, and the
    crossing latencies."""
    for plain in ("batched", "single"):
        cost_rows(runs, table, plain)
    crossing_rows(runs, table)


def cost_rows(runs: list[dict], table: Targets, plain: str) -> None:
    """A shape's readings/s with credit control, and against without it in the same round."""
    prepaid = [run[f"{plain}_cc"]["readings_per_s"] for run in runs]
    ratios = [
        run[f"{plain}_cc"]["readings_per_s"] / run[plain]["readings_per_s"]
        if run[plain]["readings_per_s"]
        else None
        for run in runs
    ]
    table.row(f"{plain}, credit control: readings/s acked", prepaid, "", None)
    table.row(
        f"{plain}, credit control / without, same round",
        ratios,
        f">= {CREDIT_RATIO_TARGET:.2f}",
        at_least(ratios, CREDIT_RATIO_TARGET),
        2,
    )
    # What other processes on the machine change least: the CPU each reading cost.
    cpu = [cpu_per_reading(run[plain]) / cpu_per_reading(run[f"{plain}_cc"]) for run in runs]
    table.row(f"{plain}: CPU per reading without / with credit control", cpu, "", None, 2)


def crossing_rows(runs: list[dict], table: Targets) -> None:
    """The crossings' pace against what their shape carried, and their latencies."""
    table.row(
        f"{CROSSING_ACCOUNTS} prepaid accounts, closed loop: readings/s acked",
        [run["prepaid_accounts"]["readings_per_s"] for run in runs],
        f"the crossings at <= {CROSSING_RATE_SHARE:.0%} of it",
        None,
    )
    crossings = [run["crossings"] for run in runs]
    held = [c["readings_per_s"] / c["rate"] for c in crossings]
    rates = "/".join(sorted({f"{c['rate']:,.0f}" for c in crossings}))
    table.row(
        "crossings: readings/s acked",
        [c["readings_per_s"] for c in crossings],
        f"paced at {rates}: >= {PACED_RATE_FLOOR:.0%} of it",
        at_least(held, PACED_RATE_FLOOR),
    )
    for kind, noun in (("alert", "dashboard alert"), ("cutoff", "device cutoff")):
        figures = [c[f"{kind}_ms"] for c in crossings]
        latency_rows(table, f"crossings: send to {noun}", figures, CROSSING_P99_TARGET)
    table.row("crossings: alerts timed", [c["alerts"]["heard"] for c in crossings], "", None)
    table.row("crossings: cut-offs timed", [c["cutoffs"]["heard"] for c in crossings], "", None)
    charges = [c["dashboard_charge_ms"] for c in crossings]
    latency_rows(table, "crossings: send to dashboard charge", charges, None)


def ocpp_rows(runs: list[dict], table: Targets) -> None:
    """OCPP charge points beside JSON devices of the same round (when bench_ocpp ran)."""
    if not all("ocpp" in run and "ocpp_json" in run for run in runs):
        return
    clients = runs[0]["ocpp"]["clients"]
    ocpp = [run["ocpp"] for run in runs]
    json_devices = [run["ocpp_json"] for run in runs]
    table.row(
        f"ocpp: MeterValues answered/s, {clients} charge points",
        [o["per_s"] for o in ocpp],
        "",
        None,
    )
    figures = [o["latency_ms"] for o in ocpp]
    latency_rows(table, "ocpp: MeterValues to CallResult", figures, OCPP_P99_TARGET)
    figures = [j["latency_ms"] for j in json_devices]
    latency_rows(table, f"ocpp: beside {clients} JSON devices, reading to ack", figures, None)


def webhook_rows(runs: list[dict], table: Targets) -> None:
    """Webhook deliveries (when bench_webhooks ran in every run)."""
    if not all("webhooks" in run for run in runs):
        return
    put = [run["webhooks"]["throughput"] for run in runs]
    paced = [run["webhooks"]["latency"] for run in runs]
    raw = [run["webhooks"]["raw_posts_per_second"] for run in runs]
    table.row(
        f"webhooks: deliveries/s, {WEBHOOK_ENDPOINTS} endpoints",
        [p["deliveries_per_second"] for p in put],
        "",
        None,
    )
    table.row(
        "webhooks: plain POSTs/s to the same receiver, 16 threads (raw limit)",
        [r.get("16_threads") for r in raw],
        "",
        None,
    )
    figures = [p["commit_to_receiver_ms"] for p in paced]
    label = f"webhooks: commit to receiver at {WEBHOOK_RATE} events/s"
    latency_rows(table, label, figures, WEBHOOK_P99_TARGET)


def webhook_checks(runs: list[dict], verdicts: list[bool]) -> list[list[str]]:
    """Every delivery made once, to the right receiver, in every run."""
    failures = [run["webhooks_failed"] for run in runs if "webhooks_failed" in run]
    figures = [run["webhooks"] for run in runs if "webhooks" in run]
    if not failures and not figures:
        return []  # not measured
    whole = not failures and all(
        f["throughput"]["deliveries_received"] == f["throughput"]["deliveries_expected"]
        and not f["throughput"]["duplicates"]
        and not f["throughput"]["unknown"]
        and f["latency"]["deliveries_received"]
        == f["latency"]["events"] * f["latency"]["endpoints"]
        for f in figures
    )
    verdicts.append(whole)
    rows = [["webhooks: every delivery made, none twice, every run", verdict(whole)]]
    return rows + [[f"  {failure}", ""] for failure in failures]


def check_rows(runs: list[dict]) -> tuple[list[list[str]], list[bool]]:
    """Exactness in every loadgen run, and what the devices had to resend."""
    kinds = ("batched", "batched_cc", "single", "single_cc", "prepaid_accounts", "paced")
    results = [run[kind] for run in runs for kind in kinds]
    exact = all(r["total"] == r["expected_total"] for r in results)
    answered = all(r["unanswered"] == 0 for r in results)
    no_errors = all(r["errors"] == 0 for r in results)
    prepaid = all(
        run[kind]["credit"]["ok"]
        for run in runs
        for kind in ("batched_cc", "single_cc", "prepaid_accounts")
    )
    crossings = [run["crossings"] for run in runs]
    crossed = all(c["ok"] for c in crossings)
    busy = sum(r["busy"] for r in results)
    resent = sum(r["resent_unanswered"] for r in results)
    duplicates = sum(r["duplicates"] for r in results)
    repeated = sum((run["paced"]["dashboard"] or {}).get("repeated", 0) for run in runs)
    rows = [
        ["charged total == usage acked, every run", verdict(exact)],
        ["every reading answered, every run", verdict(answered)],
        ["no error answers", verdict(no_errors)],
        ["prepaid runs: balance == credit - charged, not cut off, no alert", verdict(prepaid)],
        [
            "crossings: every one due heard once, with its balance; charges exact, every run",
            verdict(crossed),
        ],
        *([f"  {problem}", ""] for c in crossings for problem in c["problems"][:5]),
        [f"readings answered busy (resent): {busy:,}; resent unanswered: {resent:,}", ""],
        [f"acked as duplicates (after a resend): {duplicates:,}", ""],
        [f"readings in more than one dashboard charge event: {repeated:,}", ""],
        [
            "crossings: alerts told more than once (deduped by id): "
            f"{sum(c['alerts']['repeated'] for c in crossings):,}; credits that left the "
            f"alert unarmed (no sample): {sum(c['unarmed'] for c in crossings):,}",
            "",
        ],
    ]
    verdicts = [exact, answered, no_errors, prepaid, crossed]
    return rows + ocpp_checks(runs, verdicts) + webhook_checks(runs, verdicts), verdicts


def ocpp_checks(runs: list[dict], verdicts: list[bool]) -> list[list[str]]:
    """bench_ocpp ran to its end in every run, charged exactly and answered everything."""
    failures = [run["ocpp_failed"] for run in runs if "ocpp_failed" in run]
    phases = [run[kind] for run in runs for kind in ("ocpp", "ocpp_json") if kind in run]
    if not failures and not phases:
        return []  # not measured
    ocpp_exact = not failures and all(p["exact"] and not p["unanswered"] for p in phases)
    verdicts.append(ocpp_exact)
    rows = [["ocpp and JSON phases: charged exactly, every message answered", verdict(ocpp_exact)]]
    return rows + [[f"  {failure}", ""] for failure in failures]


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


def cpu_per_reading(result: dict) -> float:
    """CPU seconds of every process (the client's too) per reading answered."""
    return sum(result["cpu_s"].values()) / (result["answered"] or 1)


def cpu_rows(runs: list[dict], kinds: tuple[str, ...]) -> tuple[list[str], list[list[str]]]:
    """A row per kind of run that every run has (ocpp: per MeterValues message)."""
    parts = ["daphne", "workers", "postgres", "redis", "celery", "client"]
    header = ["ms CPU per reading", *parts, "total", "cores busy"]
    rows = []
    for kind in [kind for kind in kinds if all(kind in run for run in runs)]:
        per_part = {part: [] for part in [*parts, "total"]}
        busy = []
        for run in runs:
            result = run[kind]
            readings = result["answered"] or 1
            cpu = result["cpu_s"]
            for part in parts:
                per_part[part].append(cpu.get(part, 0.0) / readings * 1000)
            per_part["total"].append(cpu_per_reading(result) * 1000)
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


def limit_rows(runs: list[dict]) -> list[list[str]]:
    limits = [run["limits"] for run in runs]
    return [
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
    ]


def report_header(config, runs: list[dict]) -> None:
    print(f"\n=== Meterline bench: median (min to max) of {len(runs)} run(s) ===")
    print(f"  {os.cpu_count()} cores; {versions()}")
    print(
        f"  stack: {config.workers} rating worker(s), 1 daphne, Celery; load client in its own "
        f"process; throughput runs {config.seconds:g} s, paced soak {config.soak_seconds:g} s "
        f"(memory baseline after {config.soak_warmup:g} s)"
    )
    print(f"  batched = {BATCHED.title}\n  single  = {SINGLE.title}\n  paced   = {PACED.title}")
    print(f"  batched_cc, single_cc = the same {PREPAID}, right after")
    print(f"  prepaid_accounts = {PREPAID_ACCOUNTS.title}")
    print(f"  crossings = {runs[0]['crossings_title']}, {config.credit_seconds:g} s")
    for run in runs:
        if run["crossings_note"]:
            print(f"  {run['crossings_note']}")


def report(config, runs: list[dict]) -> bool:
    report_header(config, runs)
    print("\nRaw limits on this machine (measured in each run, the stack idle)")
    print_table(["limit", "median (min to max)"], limit_rows(runs))

    print("\nTargets")
    table = Targets()
    figure_rows(runs, table)
    ocpp_rows(runs, table)
    webhook_rows(runs, table)
    print_table(["figure", "median (min to max)", "target", "result"], table.rows)

    print("\nAgainst the raw limits (ratio per run, to that run's limit)")
    print_table(["figure / limit", "median (min to max)"], ratio_rows(runs))

    print("\nCPU per reading while streaming (median of runs; cores busy = CPU s / wall s)")
    kinds = ("batched", "batched_cc", "single", "single_cc", "prepaid_accounts", "crossings")
    kinds += ("ocpp", "ocpp_json")
    header, rows = cpu_rows(runs, (*kinds, "paced"))
    print_table(header, rows)

    print("\nMemory over the soak (MiB; change = end vs after warm-up; worst = largest |change|)")
    print_table(
        ["run", "process", "after warm-up", "end", "max", "change %", "worst %"], rss_rows(runs)
    )

    print("\nChecks")
    rows, check_verdicts = check_rows(runs)
    print_table(["check", "result"], rows)

    failed = table.verdicts.count(False) + check_verdicts.count(False)
    print(f"\n{'all targets met' if not failed else f'{failed} target(s) or check(s) FAILED'}")
    return not failed


# --- The two modes ----------------------------------------------------------------


def bench(config) -> bool:
    with running_stack(config.workers) as stack:
        warm_up(stack)
        runs = []
        for n in range(1, config.runs + 1):
            print(f"run {n}/{config.runs}")
            runs.append(bench_round(stack, config))
    return report(config, runs)


def bench_round(stack: Stack, config) -> dict:
    """One of the runs: every figure once, on the same stack."""
    run = {"limits": measure_limits(stack, config.limit_seconds)}
    for scenario in (BATCHED, BATCHED_CC, SINGLE, SINGLE_CC, PREPAID_ACCOUNTS):
        run[scenario.name] = measure(stack, scenario, config.seconds)
    rate, run["crossings_note"] = crossing_rate(run["prepaid_accounts"]["readings_per_s"])
    crossings = crossings_scenario(rate)
    run["crossings_title"] = crossings.title
    if run["crossings_note"]:
        print(f"  {run['crossings_note']}")
    run["crossings"] = measure(stack, crossings, config.credit_seconds)
    run |= measure_ocpp(stack, config.ocpp_clients, config.ocpp_seconds)
    run |= measure_webhooks(config.webhook_seconds)
    run["paced"] = measure(
        stack,
        PACED,
        config.soak_seconds,
        rss_interval=config.rss_interval,
        rss_warmup=config.soak_warmup,
    )
    return run


def crossing_rate(capacity: float) -> tuple[float, str]:
    """The crossings' pace: PACED_RATE, unless that is beyond this machine (more than
    CROSSING_RATE_SHARE of what their shape carried closed loop in this round): then that
    share, and a note saying so."""
    share = round(capacity * CROSSING_RATE_SHARE, -1)
    if share >= PACED_RATE:
        return PACED_RATE, ""
    note = (
        f"crossings paced at {share:,.0f} readings/s: {PACED_RATE:,} is more than "
        f"{CROSSING_RATE_SHARE:.0%} of the {capacity:,.0f} readings/s that "
        f"{CROSSING_ACCOUNTS} prepaid accounts carried in this round (prepaid_accounts)"
    )
    return max(share, 10.0), note


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
    scale_out_report(config, table, exact)
    return exact


def scale_out_report(config, table: list[list[str]], exact: bool) -> None:
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


def env_default(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def settings() -> argparse.Namespace:
    """The flags, each defaulting to its environment variable (module docstring)."""
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
        "--credit-seconds", type=float, default=env_default("BENCH_CREDIT_SECONDS", 60)
    )
    parser.add_argument(
        "--ocpp-clients", type=int, default=int(env_default("BENCH_OCPP_CLIENTS", 500))
    )
    parser.add_argument("--ocpp-seconds", type=float, default=os.environ.get("BENCH_OCPP_SECONDS"))
    parser.add_argument(
        "--webhook-seconds", type=float, default=os.environ.get("BENCH_WEBHOOK_SECONDS")
    )
    parser.add_argument(
        "--scale-out",
        action="store_true",
        help="batched and single readings/s with 1, 2, 4 workers and with 2 daphne processes",
    )
    config = parser.parse_args()
    config.soak_warmup = min(config.soak_warmup, config.soak_seconds / 2)
    config.credit_seconds = min(config.credit_seconds, config.soak_seconds / 2)
    if config.ocpp_seconds is None:
        config.ocpp_seconds = config.seconds
    if config.webhook_seconds is None:
        config.webhook_seconds = config.seconds
    return config


def main() -> None:
    config = settings()
    # A plain `kill` must still stop the stack: unwind through its `finally`.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        passed = scale_out(config) if config.scale_out else bench(config)
    except BenchError as exc:
        raise SystemExit(f"bench failed: {exc}") from exc
    raise SystemExit(0 if passed else 1)


if __name__ == "__main__":
    main()
