"""`make bench-fleet`: Meterline against the raw limits and the baselines, and the fleet scenarios.

    make bench-fleet                                  # 3 runs of everything, under 30 minutes
    .venv/bin/python scripts/bench_fleet.py --quick   # 1 short run, a few minutes
    .venv/bin/python scripts/bench_fleet.py --only core baselines --profile /tmp/spy

Starts the integration tests' stack (devtools/stack.py) with, beside it, the baselines'
processes (scripts/baselines/) on the same Redis and PostgreSQL. Each run, in order:

- raw limits (scripts/raw_limits.py, the stack idle): PostgreSQL COPY of 100 rows a
  transaction on one connection, a bare websockets echo server in one process at 50
  connections x 8 in flight, channels-redis send/receive;
- Meterline (scripts/loadgen.py, as `make bench`): batched, 100 readings a frame (its
  readings/s over COPY rows/s: goal >= 0.12) and single, 1 reading a frame, 50 devices x 8
  in flight (its readings/s over echo frames/s: goal >= 0.15);
- paced: 20 devices at 30% of the single readings/s just measured, dashboard open:
  send-to-ack p99 (goal <= 100 ms) and send-to-dashboard p99 (goal <= 150 ms);
- baselines, the single run's shape: (a) naive Channels (loadgen against its daphne),
  (b) HTTP POST per reading into Celery (scripts/baselines/http_load.py), accepted and saved;
- each fleet scenario of scripts/fleet/ (sockets, hosts, accounts, fanout; sockets in the
  first run only, FIRST_RUN_ONLY):
  `run(stack, seconds=...) -> dict` of figures (nested dicts are flattened; an "ok" key is
  a check; a module-level GOALS = {figure: ("<=" or ">=", number)} is judged on the median).

Then it prints each figure as median (min to max) over the runs beside the raw limits and
ratios of the same run: other work on the machine moves the absolute figures, the ratios
much less. With --profile DIR, py-spy records daphne and the rating workers during the
single and paced runs and the report says where their time went.

Settings (flags override the environment): BENCH_FLEET_RUNS (3), BENCH_FLEET_SECONDS (10,
each throughput run), BENCH_FLEET_PACED_SECONDS (30), BENCH_FLEET_SCENARIO_SECONDS (20,
passed to each scenario), BENCH_FLEET_LIMIT_SECONDS (3), BENCH_WORKERS (2); --quick is
1 run of 5 s, paced 10 s, scenarios 10 s. Exit status 0 when every goal and check passes.
"""

import argparse
import contextlib
import importlib
import inspect
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import bench  # noqa: E402
from bench import SINGLE, BenchError, Scenario, cpu_by_part, measure, spread  # noqa: E402
from spy import Spy, profile_rows  # noqa: E402

from devtools.stack import Stack  # noqa: E402
from scripts.baselines.processes import Baselines, baselines_start  # noqa: E402

HTTP_LOAD = ROOT / "scripts" / "baselines" / "http_load.py"
SCENARIOS = ("sockets", "hosts", "accounts", "fanout")
PARTS = ("core", "baselines", *SCENARIOS)
# 10,000 sockets opened, streamed to, then all reconnecting after a restart take about 6
# minutes: run in the first run only (its figures are one run's), or 3 runs take over 30.
FIRST_RUN_ONLY = ("sockets",)

BATCHED_OVER_COPY = 0.12  # goal: batched readings/s over COPY rows/s
SINGLE_OVER_ECHO = 0.15  # goal: single readings/s over echo frames/s
PACED_SHARE = 0.30  # of the single readings/s just measured
PACED_DEVICES = 20
SHOWN_WIDTH = 120  # characters of a scenario's non-numeric figure (problem lists) shown
HTTP_DEVICES = 50  # baseline (b): each one POST at a time
ACK_P99_GOAL = 100.0  # ms, paced
DASHBOARD_P99_GOAL = 150.0  # ms, paced
PACED_RATE_FLOOR = 0.98  # the paced run must have carried its rate for its latencies to count


@dataclass
class Front:
    """The stack reached through another daphne (a baseline's): what bench.measure needs."""

    stack: Stack
    http_bases: list[str]

    def __getattr__(self, name: str):
        return getattr(self.stack, name)


# --- The baselines' runs ----------------------------------------------------------


def fleet_cpu(stack: Stack) -> dict[str, float]:
    """bench.cpu_by_part, with the CPU of (b)'s Celery pool processes (children of
    "http-celery", which it counts only once they are reaped)."""
    parts = cpu_by_part(stack)
    for process in stack.processes:
        if process.name == "http-celery" and process.alive():
            with contextlib.suppress(psutil.NoSuchProcess):
                children = psutil.Process(process.popen.pid).children()
                parts["http-celery"] += sum(bench.cpu_seconds(child.pid) for child in children)
    return parts


def run_marked(stack: Stack, label: str, command: list[str], spy: Spy | None = None) -> dict:
    """A client process printing loadgen's marker lines and a JSON line last (http_load.py),
    with the CPU each part of the stack spent between the markers."""
    marks: dict = {}
    lines: list[str] = []
    with subprocess.Popen(
        command,
        cwd=ROOT,
        env=stack.app_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        for line in process.stdout:
            line = line.rstrip("\n")
            lines.append(line)
            if line == "loadgen: streaming":
                marks["cpu"], marks["t"] = fleet_cpu(stack), time.monotonic()
            elif line == "loadgen: drained" and "cpu" in marks:
                after = fleet_cpu(stack)
                marks["cpu"] = {part: after[part] - marks["cpu"].get(part, 0.0) for part in after}
                marks["wall"] = time.monotonic() - marks["t"]
            elif not line.startswith(("{", "loadgen: ")):
                print(f"    {line}")
    results = [line for line in lines if line.startswith("{")]
    if not results or "wall" not in marks:
        raise BenchError(f"{label} failed ({process.returncode}):\n" + "\n".join(lines[-30:]))
    result = json.loads(results[-1])
    result["cpu_s"] = {**marks["cpu"], "client": result["client_cpu_s"]}
    result["wall_s"] = marks["wall"]
    return result


def measure_http(stack: Stack, base: str, seconds: float) -> dict:
    print(
        f"  http+celery: baseline (b), {HTTP_DEVICES} devices, a POST at a time each, {seconds:g} s"
    )
    command = [sys.executable, str(HTTP_LOAD), "--url", base, "--key", stack.operator_key]
    command += ["--devices", str(HTTP_DEVICES), "--in-flight", "1", "--seconds", str(seconds)]
    return run_marked(stack, "http_load.py", command)


# --- Raw limits and Meterline's own runs -----------------------------------------------


def measure_limits(stack: Stack, seconds: float) -> dict:
    """bench.py's raw limits (raw_limits.py measures the echo server and the per-CPU
    figures too), and a line about those."""
    limits = bench.measure_limits(stack, seconds)
    print(
        f"  echo {limits['echo_frames_per_s']:,.0f} frames/s (server "
        f"{limits['echo_server_core_share']} of a core, client "
        f"{limits['echo_client_core_share']}); per CPU second: COPY "
        f"{limits.get('pg_copy_rows_per_cpu_s') or 0:,.0f} rows, echo "
        f"{limits['echo_frames_per_cpu_s']:,.0f} frames"
    )
    return limits


def paced_scenario(single_per_s: float) -> Scenario:
    rate = max(1, round(single_per_s * PACED_SHARE))
    return Scenario(
        "paced",
        f"{rate:,} readings/s ({PACED_SHARE:.0%} of single) from {PACED_DEVICES} devices, "
        "dashboard open",
        ("--devices", str(PACED_DEVICES), "--rate", str(rate), "--dashboard"),
    )


def spied(stack: Stack, spy_dir: Path | None, label: str, work: Callable[[], dict]) -> dict:
    """`work()`, with py-spy recording daphne and the rating workers meanwhile if asked."""
    if spy_dir is None:
        return work()
    pids = {
        p.name: p.popen.pid for p in stack.processes if p.name.startswith(("daphne", "worker-"))
    }
    spy = Spy(pids, spy_dir / label)
    spy.start()
    try:
        result = work()
    finally:
        spy.stop()
    result["profile"] = spy.summary()
    return result


def core_run(stack: Stack, config, run: dict) -> None:
    run["limits"] = measure_limits(stack, config.limit_seconds)
    run["batched"] = measure(stack, bench.BATCHED, config.seconds)
    run["single"] = spied(
        stack, config.profile, f"single-{run['n']}", lambda: measure(stack, SINGLE, config.seconds)
    )
    paced = paced_scenario(run["single"]["readings_per_s"])
    run["paced"] = spied(
        stack,
        config.profile,
        f"paced-{run['n']}",
        lambda: measure(stack, paced, config.paced_seconds),
    )
    run["paced"]["rate"] = float(paced.args[3])


def baselines_run(stack: Stack, baselines: Baselines, config, run: dict) -> None:
    print(f"  naive: baseline (a), {SINGLE.title}")
    run["naive"] = measure(Front(stack, [baselines.naive]), SINGLE, config.seconds)
    run["http"] = measure_http(stack, baselines.http, config.seconds)


# --- Fleet scenarios --------------------------------------------------------------


def scenario_module(name: str):
    """scripts/fleet/<name>.py, imported."""
    return importlib.import_module(f"scripts.fleet.{name}")


def scenario_run(module, stack: Stack, seconds: float) -> dict:
    """The scenario's figures; what went wrong, as a figure, if it failed."""
    kwargs = {"seconds": seconds} if "seconds" in inspect.signature(module.run).parameters else {}
    started = time.monotonic()
    try:
        result = module.run(stack, **kwargs)
    except Exception as exc:
        traceback.print_exc()
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    result["scenario_wall_s"] = round(time.monotonic() - started, 1)
    return result


def flatten(figures: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in figures.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


# --- Report -----------------------------------------------------------------------


def ratios(
    runs: list[dict], top: Callable[[dict], float | None], bottom: Callable[[dict], float | None]
):
    """top(run) / bottom(run) per run, None where either is missing or the bottom is 0."""
    values = []
    for run in runs:
        a, b = top(run), bottom(run)
        values.append(a / b if a is not None and b else None)
    return values


def judged(values: list, goal: str, floor: float | None = None, ceiling: float | None = None):
    middle = bench.median(values)
    if middle is None:
        return [goal, "FAIL"]
    passed = (floor is None or middle >= floor) and (ceiling is None or middle <= ceiling)
    return [goal, bench.verdict(passed)]


def limit_rows(runs: list[dict]) -> list[list[str]]:
    limits = [run["limits"] for run in runs]

    def row(label: str, key: str, decimals: int = 0) -> list[str]:
        return [label, spread([lim.get(key) for lim in limits], decimals)]

    return [
        row("PostgreSQL COPY, 100 rows a transaction, 1 connection: rows/s", "pg_copy_rows_per_s"),
        row(
            "websockets echo server, 1 process, 50 connections x 8 in flight: frames/s",
            "echo_frames_per_s",
        ),
        row("  echo server's share of a core", "echo_server_core_share", 2),
        row("  echo client's share of a core (1 process)", "echo_client_core_share", 2),
        row("COPY rows per CPU second (client and backend)", "pg_copy_rows_per_cpu_s"),
        row("echo frames per CPU second (server and client)", "echo_frames_per_cpu_s"),
        row(
            "channels-redis send then receive, 1 sender, 1 receiver: msg/s",
            "channels_redis_msg_per_s",
        ),
    ]


def per_cpu_s(result: dict) -> float | None:
    """Readings acked per CPU second of every process, the load client's included."""
    spent = sum(result["cpu_s"].values())
    return result["answered"] / spent if spent else None


# (run, its frames, the limit's key in raw_limits.py, the limit's name, goal over it)
LIMIT_RATIOS = (
    ("batched", "100 readings a frame", "pg_copy_rows", "COPY rows", BATCHED_OVER_COPY),
    ("single", "1 reading a frame", "echo_frames", "echo frames", SINGLE_OVER_ECHO),
)


def limit_ratio_rows(runs: list[dict]) -> list[list[str]]:
    """Batched over COPY and single over echo: per wall second (the goals) and per CPU
    second (what the machine's other work moves less)."""
    rows = []
    for kind, frames, key, name, goal in LIMIT_RATIOS:
        over = ratios(
            runs,
            lambda r, k=kind: r[k]["readings_per_s"],
            lambda r, u=key: r["limits"][f"{u}_per_s"],
        )
        over_cpu = ratios(
            runs,
            lambda r, k=kind: per_cpu_s(r[k]),
            lambda r, u=key: r["limits"].get(f"{u}_per_cpu_s"),
        )
        per_s = spread([r[kind]["readings_per_s"] for r in runs])
        rows.append([f"{kind} ({frames}) readings/s", per_s, f"{name}/s", spread(over, 3)])
        rows[-1] += judged(over, f">= {goal}", floor=goal)
        per_cpu = spread([per_cpu_s(r[kind]) for r in runs])
        rows.append([f"{kind} readings per CPU second", per_cpu, f"{name} per CPU s"])
        rows[-1] += [spread(over_cpu, 3), "", ""]
    return rows


def paced_rows(runs: list[dict]) -> list[list[str]]:
    paced = [run["paced"] for run in runs]
    dash = [p.get("dashboard") or {} for p in paced]
    carried = ratios(runs, lambda r: r["paced"]["readings_per_s"], lambda r: r["paced"]["rate"])
    ack99 = [p["ack_ms"]["p99"] for p in paced]
    dash99 = [d.get("charge_ms", {}).get("p99") for d in dash]
    return [
        [
            "rate asked (30% of that run's single readings/s)",
            spread([p["rate"] for p in paced]),
            "",
            "",
        ],
        [
            "carried / asked",
            spread(carried, 3),
            *judged(carried, f">= {PACED_RATE_FLOOR}", floor=PACED_RATE_FLOOR),
        ],
        ["send to ack p50, ms", spread([p["ack_ms"]["p50"] for p in paced], 1), "", ""],
        [
            "send to ack p99, ms",
            spread(ack99, 1),
            *judged(ack99, f"<= {ACK_P99_GOAL:g}", ceiling=ACK_P99_GOAL),
        ],
        [
            "send to dashboard charge p50, ms",
            spread([d.get("charge_ms", {}).get("p50") for d in dash], 1),
            "",
            "",
        ],
        [
            "send to dashboard charge p99, ms",
            spread(dash99, 1),
            *judged(dash99, f"<= {DASHBOARD_P99_GOAL:g}", ceiling=DASHBOARD_P99_GOAL),
        ],
        ["acked readings the dashboard missed", spread([d.get("missing") for d in dash]), "", ""],
    ]


def cpu_ms(result: dict, readings: int) -> float:
    """CPU of every process (load client included) per reading, in ms."""
    return sum(result["cpu_s"].values()) / max(readings, 1) * 1000


# (label, per-run throughput, per-run p99 ms, per-run CPU ms per reading)
BASELINE_FIGURES = [
    (
        "Meterline, single",
        lambda r: r["single"]["readings_per_s"],
        lambda r: r["single"]["ack_ms"]["p99"],
        lambda r: cpu_ms(r["single"], r["single"]["answered"]),
    ),
    (
        "(a) naive Channels: ack after save",
        lambda r: r["naive"]["readings_per_s"],
        lambda r: r["naive"]["ack_ms"]["p99"],
        lambda r: cpu_ms(r["naive"], r["naive"]["answered"]),
    ),
    (
        "(b) HTTP + Celery: accepted (202)",
        lambda r: r["http"]["accepted_per_s"],
        lambda r: r["http"]["accept_ms"]["p99"],
        lambda r: None,
    ),
    (
        "(b) HTTP + Celery: saved",
        lambda r: r["http"]["saved_per_s"],
        lambda r: r["http"]["saved_ms"]["p99"],
        lambda r: cpu_ms(r["http"], r["http"]["saved"]),
    ),
]


def baseline_rows(runs: list[dict]) -> list[list[str]]:
    """Each system's readings/s and p99, and Meterline's over it (same run)."""
    _, ours, our_p99, _ = BASELINE_FIGURES[0]
    rows = []
    for label, per_s, p99, cpu in BASELINE_FIGURES:
        rows.append(
            [
                label,
                spread([per_s(run) for run in runs]),
                spread([p99(run) for run in runs], 1),
                spread(ratios(runs, ours, per_s), 2),
                spread(ratios(runs, our_p99, p99), 2),
                spread([cpu(run) for run in runs], 2),
            ]
        )
    return rows


CPU_GROUPS = ("web", "workers", "postgres", "redis", "client", "other")


def cpu_group(part: str) -> str:
    """Where a part of bench.cpu_by_part belongs, the baselines' processes included."""
    if part.endswith("daphne") or part == "http-web":
        return "web"
    if part.startswith(("workers", "naive-worker-")) or part == "http-celery":
        return "workers"
    return part if part in CPU_GROUPS else "other"


def cpu_rows(runs: list[dict]) -> list[list[str]]:
    """Per run kind: ms CPU per reading by group of processes, in all, and cores busy."""
    rows = []
    for kind in ("batched", "single", "paced", "naive", "http"):
        present = [run[kind] for run in runs if kind in run]
        if not present:
            continue
        groups: dict[str, list[float]] = {group: [] for group in (*CPU_GROUPS, "total")}
        for result in present:
            readings = max(result["saved" if kind == "http" else "answered"], 1)
            spent = dict.fromkeys(CPU_GROUPS, 0.0)
            for part, seconds in result["cpu_s"].items():
                spent[cpu_group(part)] += seconds
            for group, seconds in [*spent.items(), ("total", sum(spent.values()))]:
                groups[group].append(seconds / readings * 1000)
        busy = [sum(result["cpu_s"].values()) / result["wall_s"] for result in present]
        cells = [f"{bench.median(values):.3f}" for values in groups.values()]
        rows.append([kind, *cells, f"{bench.median(busy):.2f}"])
    return rows


def shown(values: list) -> str:
    """Numbers as median (min to max), anything else as the values seen."""
    known = [v for v in values if v is not None]
    if known and all(isinstance(v, int | float) and not isinstance(v, bool) for v in known):
        return spread(values, 1)
    seen = ", ".join(sorted({str(v) for v in values}))
    return seen if len(seen) <= SHOWN_WIDTH else seen[: SHOWN_WIDTH - 3] + "..."


def goal_cells(key: str, values: list, goals: dict) -> list[str]:
    """[goal, PASS/FAIL] of a scenario's figure: "ok" must be True in every run, a figure
    of GOALS is judged on its median; ["", ""] for the rest."""
    if key == "ok":
        return ["True in every run", bench.verdict(all(v is True for v in values))]
    if key in goals:
        op, bound = goals[key]
        limits = {"floor": bound} if op == ">=" else {"ceiling": bound}
        return judged(values, f"{op} {bound:g}", **limits)
    return ["", ""]


def scenario_rows(results: list[dict], goals: dict) -> tuple[list[list[str]], list[bool]]:
    """One row per figure of the scenario (nested dicts flattened), with its goal."""
    flat = [flatten(result) for result in results]
    rows, verdicts = [], []
    for key in dict.fromkeys(key for figures in flat for key in figures):
        values = [figures.get(key) for figures in flat]
        cells = goal_cells(key, values, goals)
        if cells[1]:
            verdicts.append(cells[1] == "PASS")
        rows.append([key, shown(values), *cells])
    return rows, verdicts


def check_rows(runs: list[dict]) -> tuple[list[list[str]], list[bool]]:
    """Exactness of every loadgen and http_load run: charged total == usage acked (saved)."""
    rows, verdicts = [], []
    for kind, label in [
        ("batched", "Meterline batched"),
        ("single", "Meterline single"),
        ("paced", "Meterline paced (and the dashboard saw every charge)"),
        ("naive", "(a) naive Channels"),
        ("http", "(b) HTTP + Celery (every accepted reading saved)"),
    ]:
        present = [run[kind] for run in runs if kind in run]
        if present:
            passed = all(result["ok"] for result in present)
            problems = sorted({p for result in present for p in result.get("problems", [])})
            rows.append(
                [
                    f"{label}: exact totals, every run",
                    bench.verdict(passed),
                    "; ".join(problems)[:200],
                ]
            )
            verdicts.append(passed)
    return rows, verdicts


def report_core(runs: list[dict]) -> list[bool]:
    print("\nRaw limits (measured in each run, the stack idle)")
    bench.print_table(["limit", "median (min to max)"], limit_rows(runs))
    print("\nMeterline over the raw limits (ratio per run, to that run's limit)")
    header = ["figure", "median (min to max)", "limit", "ratio", "goal", "result"]
    rows = limit_ratio_rows(runs)
    bench.print_table(header, rows)
    print(f"\nPaced: {PACED_DEVICES} devices, single-reading frames, dashboard open")
    paced = paced_rows(runs)
    bench.print_table(["figure", "median (min to max)", "goal", "result"], paced)
    print(
        "\nCPU per reading while streaming, all processes "
        "(ms, median of runs; cores busy = CPU s / wall s)"
    )
    header = ["ms CPU per reading", *CPU_GROUPS, "total", "cores busy"]
    bench.print_table(header, cpu_rows(runs))
    return [row[-1] == "PASS" for row in [*rows, *paced] if row[-1]]


def report_baselines(runs: list[dict]) -> None:
    print(
        f"\nBaselines, same stack, same run: {SINGLE.title}; "
        f"HTTP: {HTTP_DEVICES} devices, one POST at a time each"
    )
    header = [
        "system",
        "readings/s",
        "p99 ms",
        "Meterline readings/s over it",
        "Meterline p99 over it",
        "ms CPU/reading",
    ]
    bench.print_table(header, baseline_rows(runs))


def report_scenarios(runs: list[dict], config) -> list[bool]:
    verdicts = []
    for name in SCENARIOS:
        if name not in config.parts:
            continue
        results = [run["scenarios"][name] for run in runs if run.get("scenarios", {}).get(name)]
        module = config.modules[name]
        print(f"\nFleet scenario {name} (scripts/fleet/{name}.py)")
        rows, passed = scenario_rows(results, getattr(module, "GOALS", {}))
        bench.print_table(["figure", "median (min to max)", "goal", "result"], rows)
        verdicts += passed
    return verdicts


def report_profiles(runs: list[dict]) -> None:
    for run in runs:
        for kind in ("single", "paced"):
            profile = run.get(kind, {}).get("profile")
            if profile:
                print(f"\nProfile of run {run['n']}, {kind} (py-spy, % of each process's samples)")
                bench.print_table(["process", "where", "self %", "total %"], profile_rows(profile))


def report(config, runs: list[dict], started: float) -> bool:
    print(f"\n=== Meterline bench-fleet: median (min to max) of {len(runs)} run(s) ===")
    print(f"  {os.cpu_count()} cores; {bench.versions()}")
    print(
        f"  stack: {config.workers} rating worker(s), 1 daphne, Celery, the baselines' processes; "
        f"throughput runs {config.seconds:g} s, paced {config.paced_seconds:g} s, scenarios "
        f"{config.scenario_seconds:g} s; took {(time.monotonic() - started) / 60:.1f} minutes"
    )
    verdicts = []
    if "core" in config.parts:
        verdicts += report_core(runs)
    if "baselines" in config.parts:
        report_baselines(runs)
    verdicts += report_scenarios(runs, config)
    report_profiles(runs)
    print("\nWall time of each part, s (median of runs)")
    parts = list(dict.fromkeys(part for run in runs for part in run.get("took_s", {})))
    bench.print_table(
        ["part", "median (min to max)"],
        [[part, spread([run["took_s"].get(part) for run in runs])] for part in parts],
    )
    print("\nChecks")
    rows, checks = check_rows(runs)
    bench.print_table(["check", "result", "problems"], rows)
    failed = (verdicts + checks).count(False)
    print(
        f"\n{'every goal and check met' if not failed else f'{failed} goal(s) or check(s) FAILED'}"
    )
    return not failed


# --- The run ------------------------------------------------------------------------


def one_run(stack: Stack, baselines: Baselines | None, config, n: int) -> dict:
    """Run n: the parts asked for, with each part's wall time in run["took_s"]."""
    run: dict = {"n": n, "scenarios": {}, "took_s": {}}

    def timed(part: str, work: Callable[[], object]) -> object:
        started = time.monotonic()
        result = work()
        run["took_s"][part] = round(time.monotonic() - started, 1)
        return result

    if "core" in config.parts:
        timed("core", lambda: core_run(stack, config, run))
    if baselines is not None:
        timed("baselines", lambda: baselines_run(stack, baselines, config, run))
    for name, module in config.modules.items():
        if name in FIRST_RUN_ONLY and n > 1:
            continue
        print(f"  scenario {name}, {config.scenario_seconds:g} s")
        work = lambda module=module: scenario_run(module, stack, config.scenario_seconds)  # noqa: E731
        run["scenarios"][name] = timed(name, work)
    return run


def fleet_bench(config) -> bool:
    started = time.monotonic()
    config.modules = {name: scenario_module(name) for name in SCENARIOS if name in config.parts}
    with bench.running_stack(config.workers) as stack:
        bench.warm_up(stack)
        baselines = None
        if "baselines" in config.parts:
            baselines = baselines_start(stack, workers=config.workers)
            print("  baselines' warm-up (not counted)")
            measure(Front(stack, [baselines.naive]), SINGLE, 2)
            measure_http(stack, baselines.http, 2)
        runs = []
        for n in range(1, config.runs + 1):
            print(f"run {n}/{config.runs}")
            runs.append(one_run(stack, baselines, config, n))
            if config.json:
                config.json.write_text(json.dumps(runs, indent=1, default=str))
    return report(config, runs, started)


def env_default(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=int(env_default("BENCH_FLEET_RUNS", 3)))
    parser.add_argument("--seconds", type=float, default=env_default("BENCH_FLEET_SECONDS", 10))
    parser.add_argument(
        "--paced-seconds", type=float, default=env_default("BENCH_FLEET_PACED_SECONDS", 30)
    )
    parser.add_argument(
        "--scenario-seconds", type=float, default=env_default("BENCH_FLEET_SCENARIO_SECONDS", 20)
    )
    parser.add_argument(
        "--limit-seconds", type=float, default=env_default("BENCH_FLEET_LIMIT_SECONDS", 3)
    )
    parser.add_argument("--workers", type=int, default=int(env_default("BENCH_WORKERS", 2)))
    parser.add_argument(
        "--quick", action="store_true", help="1 run: 5 s, paced 10 s, scenarios 10 s"
    )
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS), dest="parts")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy output directory")
    parser.add_argument("--json", type=Path, default=None, help="write every run's figures here")
    config = parser.parse_args()
    if config.quick:
        config.runs, config.seconds, config.paced_seconds, config.scenario_seconds = 1, 5, 10, 10
    if "baselines" in config.parts and "core" not in config.parts:
        parser.error("the baselines are compared with the core runs: --only core baselines")
    return config


def main() -> None:
    config = arguments()
    # A plain `kill` must still stop the stack: unwind through its `finally`.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        passed = fleet_bench(config)
    except BenchError as exc:
        raise SystemExit(f"bench-fleet failed: {exc}") from exc
    raise SystemExit(0 if passed else 1)


if __name__ == "__main__":
    main()
