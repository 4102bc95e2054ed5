"""Fleet scenario "sockets" (issue 18): 10,000 device WebSockets on one daphne, each
sending a reading every 10 s, then all of them reconnecting at once after it restarts.

    .venv/bin/python scripts/fleet/sockets.py                    # its own stack, 10,000
    .venv/bin/python scripts/fleet/sockets.py --devices 1000 --seconds 20
    run(stack, seconds=30) -> dict                               # scripts/bench_fleet.py

The devices talk to a daphne of the scenario's own (FleetWeb) on the stack's Redis,
database and rating workers. It serves a listening socket the scenario holds and hands
it over as `daphne --fd`, as supervisord does in deploy/, so a restart keeps the port
and devices reconnecting meanwhile wait in its backlog. The devices are clients/device.py
devices, several processes of them (scripts/fleet/swarm.py): one process would spend
more CPU opening and serving 10,000 sockets than the server does.

Figures: the daphne's RSS with none and with every socket open (per connection: goal
<= 30 KiB), send-to-ack latency of the steady phase (p99: goal <= 100 ms), and the
storm: from the SIGTERM of the daphne holding every socket until every device has
reconnected and has an ack for a reading it sent on its new connection (goal <= 30 s).
CPU seconds per second of each part (the swarm processes' own included: they run on the
same two cores) for both phases. The check: every reading sent was answered, and each
meter's usage in the database is exactly its readings acked (1 kWh each): none lost,
none charged twice.
"""

from __future__ import annotations

import argparse
import json
import math
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devtools.stack import (  # noqa: E402
    BIN_DIR,
    STARTUP_TIMEOUT,
    Process,
    Stack,
    http_json,
    wait_for,
)
from project.limits import open_files_raise  # noqa: E402
from scripts.bench import cpu_by_part  # noqa: E402
from scripts.fleet.provision import Fleet, fleet_provision  # noqa: E402
from scripts.fleet.swarm import Swarm, recovery  # noqa: E402

DEVICES = 10_000
ACCOUNTS = 10
INTERVAL = 10.0  # seconds between a device's readings
SWARMS = 4  # device processes
AT_ONCE = 50  # handshakes each swarm process has under way at a time, first connect
BACKLOG = 4096  # as deploy/supervisord.conf's socket_backlog
SETTLE = 3.0  # seconds between phases, for answers in flight to arrive
STORM_PATIENCE = 120.0  # seconds the storm is given to recover (goal: 30): then not_recovered
GOALS = {
    "rss_per_connection_kib": ("<=", 30),
    "steady.ack_p99_ms": ("<=", 100),
    "storm.all_acked_s": ("<=", 30),
}


class FleetWeb:
    """A daphne of the scenario's own, on the stack's Redis and database, serving a
    listening socket held here (`daphne --fd`, as supervisord runs deploy/'s)."""

    name = "fleet-web"

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.process: Process | None = None

    def __enter__(self) -> FleetWeb:
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(BACKLOG)
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
        self.listener.close()

    @property
    def port(self) -> int:
        return self.listener.getsockname()[1]

    @property
    def meters_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/meters/"

    def start(self, *, wait: bool = True) -> None:
        """Start it; with `wait`, until it answers /healthz (a restarted one answers only
        after the devices queued in its backlog ahead of the request)."""
        fd = self.listener.fileno()
        log = self.stack.tmp / "logs" / f"{self.name}.log"
        log.parent.mkdir(exist_ok=True)
        with log.open("ab") as out:
            popen = subprocess.Popen(
                self.command(fd),
                pass_fds=(fd,),
                cwd=ROOT,
                env=self.stack.app_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.process = Process(name=self.name, popen=popen, log=log)
        self.stack.processes.append(self.process)  # stopped with the stack; its log checked
        if not wait:
            return
        base = f"http://127.0.0.1:{self.port}"
        wait_for(
            lambda: http_json("GET", f"{base}/healthz", timeout=5)[0] in (200, 503),
            timeout=STARTUP_TIMEOUT,
            what=self.name,
        )

    def command(self, fd: int) -> list[str]:
        return [str(BIN_DIR / "daphne"), "--fd", str(fd), "project.asgi:application"]

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM: it closes its sockets with 1012 (project/shutdown.py), then exits."""
        if self.process is not None:
            self.process.stop(timeout=timeout)
            self.stack.processes.remove(self.process)
            self.process = None

    def restart(self) -> dict:
        """Stop and start again on the same socket: seconds from the SIGTERM until it had
        exited."""
        began = time.monotonic()
        self.stop()
        stopped = time.monotonic()
        self.start(wait=False)
        return {"stopped_s": round(stopped - began, 2)}

    def rss_kib(self) -> int:
        return psutil.Process(self.process.popen.pid).memory_info().rss // 1024


# --- the phases ---------------------------------------------------------------------


def connections_open(web: FleetWeb, swarm: Swarm, devices: int) -> dict:
    """Open every device's socket: the time it took, and daphne's RSS without and with them."""
    idle = web.rss_kib()
    answers = swarm.command("connect", timeout=600)
    opened = sum(answer["open"] for answer in answers)
    if opened < devices:
        raise RuntimeError(f"only {opened} of {devices} device sockets opened")
    time.sleep(SETTLE)
    full = web.rss_kib()
    return {
        "connect_s": max(answer["seconds"] for answer in answers),
        "rss_idle_kib": idle,
        "rss_open_kib": full,
        "rss_per_connection_kib": round((full - idle) / devices, 1),
    }


def steady_phase(stack: Stack, web: FleetWeb, swarm: Swarm, seconds: float) -> dict:
    """Every device streaming: CPU per part while it lasts, and daphne's RSS at its end."""
    before, began = Cpu.sample(stack, swarm.command("stream", phase="steady")), time.monotonic()
    time.sleep(seconds)
    after = Cpu.sample(stack, swarm.command("stream", phase="settle"))
    return {"rss_streaming_kib": web.rss_kib(), "cpu": Cpu.per_second(before, after, began)}


def storm_phase(stack: Stack, web: FleetWeb, swarm: Swarm) -> dict:
    """Restart the daphne holding every socket and wait until each device has an ack for
    the reading it sends on reconnecting."""
    time.sleep(SETTLE)
    before, began = Cpu.sample(stack, swarm.command("arm", phase="storm")), time.monotonic()
    restart = web.restart()
    answers = swarm.command("recovered", timeout=STORM_PATIENCE)
    after = Cpu.sample(stack, answers)
    return {
        **restart,
        **recovery(answers),
        "rss_after_kib": web.rss_kib(),
        "cpu": Cpu.per_second(before, after, began),
    }


class Cpu:
    """CPU seconds of each part of the stack and of the swarm processes."""

    @staticmethod
    def sample(stack: Stack, answers: list[dict]) -> dict[str, float]:
        parts = cpu_by_part(stack)
        parts["swarm"] = sum(answer["cpu_s"] for answer in answers)
        parts["machine"] = sum(psutil.cpu_times()[:3])  # user, nice, system of all cores
        return parts

    @staticmethod
    def per_second(before: dict, after: dict, began: float) -> dict[str, float]:
        """Cores busy in each part (1.0: one core all the time) between the samples."""
        elapsed = time.monotonic() - began
        return {
            part: round((after[part] - before.get(part, 0.0)) / elapsed, 3)
            for part in after
            if part in ("fleet-web", "workers", "postgres", "redis", "swarm", "machine")
        }


# --- the check ----------------------------------------------------------------------


def merged_tally(answers: list[dict]) -> dict:
    """The swarm processes' tallies as one."""
    tally: dict = {"sent": Counter(), "acked": Counter(), "latencies_ms": {}}
    for answer in answers:
        tally["sent"].update(answer["sent"])
        tally["acked"].update(answer["acked"])
        for phase, samples in answer["latencies_ms"].items():
            tally["latencies_ms"].setdefault(phase, []).extend(samples)
        for name in ("unanswered", "errors", "duplicates", "busy_readings", "resent", "late"):
            tally[name] = tally.get(name, 0) + answer[name]
    return tally


def fleet_check(stack: Stack, fleet: Fleet, tally: dict) -> dict:
    """Each meter's usage (1 kWh a reading) against its readings acked and sent."""
    usage: dict[str, Decimal] = {}
    for account in fleet.accounts:
        for row in stack.usage(account)["meters"]:
            usage[row["id"]] = Decimal(row["usage"])
    meters = [m.meter for m in fleet.meters]
    acked, sent = tally["acked"], tally["sent"]
    return {
        "readings": sum(sent.values()),
        "unanswered": tally["unanswered"],
        "errors": tally["errors"],
        "lost": sum(max(0, acked[m] - usage.get(m, 0)) for m in meters),
        "doubled": sum(max(0, usage.get(m, 0) - sent[m]) for m in meters),
        "acked_twice": tally["late"],
        "resent": tally["resent"],
        "busy_readings": tally["busy_readings"],
    }


def percentile(samples: list[float], q: float) -> float | None:
    """Nearest rank."""
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# --- the scenario -------------------------------------------------------------------


def run(
    stack: Stack,
    *,
    devices: int = DEVICES,
    accounts: int = ACCOUNTS,
    interval: float = INTERVAL,
    seconds: float = 30.0,
    swarms: int = SWARMS,
    storm: bool = True,
) -> dict:
    """The scenario on a running stack (its API, Redis, database and workers)."""
    open_files_raise()  # the fleet's daphne inherits it
    fleet = fleet_provision(
        api=lambda method, path, body=None: stack.api_ok(method, path, body, 201),
        env=stack.app_env(),
        accounts=accounts,
        meters=math.ceil(devices / accounts),
    )
    figures: dict = {"devices": len(fleet.meters), "swarm_processes": swarms}
    with (
        FleetWeb(stack) as web,
        Swarm(
            [{"meter": m.meter, "token": m.token, "urls": [web.meters_url]} for m in fleet.meters],
            processes=swarms,
            log=stack.tmp / "logs" / "fleet-swarm.log",
            interval=interval,
            at_once=AT_ONCE,
            options={"ping_interval": None},  # the server pings a silent device: no need to
        ) as swarm,
    ):
        figures |= connections_open(web, swarm, len(fleet.meters))
        figures["steady"] = steady_phase(stack, web, swarm, seconds)
        if storm:
            figures["storm"] = storm_phase(stack, web, swarm)
        tally = merged_tally(swarm.command("drain", timeout=120))
    steady = tally["latencies_ms"].get("steady", [])
    figures["steady"] |= {
        "readings_per_s": round(len(steady) / seconds, 1),
        "ack_p50_ms": percentile(steady, 0.50),
        "ack_p99_ms": percentile(steady, 0.99),
        "ack_max_ms": percentile(steady, 1.0),
    }
    figures["check"] = fleet_check(stack, fleet, tally)
    check = figures["check"]
    figures["ok"] = not (
        check["unanswered"] or check["errors"] or check["lost"] or check["doubled"]
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=DEVICES)
    parser.add_argument("--accounts", type=int, default=ACCOUNTS)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--swarms", type=int, default=SWARMS)
    parser.add_argument("--no-storm", action="store_true")
    args = parser.parse_args()
    stack = Stack(tmp=Path(tempfile.mkdtemp(prefix="meterline-fleet-sockets-")))
    try:
        stack.start()
        figures = run(
            stack,
            devices=args.devices,
            accounts=args.accounts,
            seconds=args.seconds,
            swarms=args.swarms,
            storm=not args.no_storm,
        )
    finally:
        stack.stop()
    print(json.dumps(figures, indent=2))
    print(f"logs in {stack.tmp / 'logs'}", file=sys.stderr)


if __name__ == "__main__":
    main()
