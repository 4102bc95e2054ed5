"""Thousands of device sockets in one process, for the fleet scenarios (scripts/fleet/).

One process cannot open and serve 10,000 WebSockets fast enough on two cores, so a
scenario starts several of these (`Swarm.start`) and drives them together. Each device
is a clients/device.py Device (resends what is unanswered, reconnects, fails over between
its URLs), all sharing one Outcomes record; nothing here speaks the protocol itself.

A swarm process reads its plan, then commands, one JSON object a line on stdin, and
answers each with one JSON line on stdout:

    {"devices": [{"meter", "token", "urls": [...]}], "interval": 10.0, "at_once": 50,
     "options": {...}}             the plan: `options` go to websockets' connect
    {"cmd": "connect"}             -> "connected": every device has its socket open (at
                                      most `at_once` handshakes at a time)
    {"cmd": "stream", "phase": p}  -> "streaming": each device sends a reading every
                                      `interval` s, the devices spread over the interval;
                                      readings first sent from now on belong to phase p
    {"cmd": "arm", "phase": p}     -> "armed": as stream, and each device's next
                                      connection sends a reading at once (the storm)
    {"cmd": "recovered", "timeout": s, "home": url} -> "recovered": when each device
                                      (whose first URL is `home`, if given) has opened
                                      a connection since "arm" and has that reading
                                      acked (or `timeout` s have passed)
    {"cmd": "drain", "timeout": s} -> "drained": no more readings; every one sent is
                                      answered (or the timeout passed); then it exits

Times are time.monotonic() (one clock for every process of the machine), CPU is
the process's own user + system seconds at each answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import resource
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from websockets.exceptions import InvalidHandshake  # noqa: E402

from clients.device import Backoff, Device, Outcomes  # noqa: E402
from project.limits import open_files_raise  # noqa: E402

RECOVERY = "rec"  # the sequence part of the reading each device sends on reconnecting


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return round(usage.ru_utime + usage.ru_stime, 2)


@dataclass
class Member:
    """One device of the swarm and what the scenario asks of it."""

    index: int
    meter: str
    device: Device | None = None
    seq: int = 0
    reopened_at: float | None = None  # its first connection opened after "arm"


@dataclass
class SwarmProcess:
    """The process side: the devices, the phase readings count in, the storm's marks."""

    members: list[Member]
    interval: float
    at_once: int
    outcomes: Outcomes = field(default_factory=Outcomes)
    phase_of: dict[str, str] = field(default_factory=dict)  # reading id -> its phase
    phase: str = ""
    streaming: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    armed_at: float | None = None
    opened: int = 0
    started_at: float = 0.0
    runs: list[asyncio.Task] = field(default_factory=list)

    @classmethod
    def from_plan(cls, plan: dict) -> SwarmProcess:
        swarm = cls([], float(plan["interval"]), int(plan.get("at_once", 50)))
        backoff = Backoff(**plan.get("backoff", {}))
        for index, spec in enumerate(plan["devices"]):
            member = Member(index, spec["meter"])
            member.device = Device(
                spec["urls"],
                spec["token"],
                name=f"device {index}",
                outcomes=swarm.outcomes,
                backoff=backoff,
                on_open=lambda _device, member=member: swarm.opened_by(member),
                **plan.get("options", {}),
            )
            swarm.members.append(member)
        return swarm

    # --- the devices ---------------------------------------------------------------

    def send(self, member: Member, seq: str) -> None:
        """A new reading of 1 kWh from `member`, counted in the current phase."""
        rid = f"{member.index}-{seq}"
        self.phase_of[rid] = self.phase
        ts = datetime.now(UTC).isoformat()
        task = asyncio.ensure_future(member.device.send([{"id": rid, "ts": ts, "quantity": "1"}]))
        task.add_done_callback(_reraise)

    def opened_by(self, member: Member) -> None:
        """A connection of `member` is open: after "arm", its first sends a reading at once."""
        self.opened += 1
        if self.armed_at is not None and member.reopened_at is None:
            member.reopened_at = time.monotonic()
            self.send(member, RECOVERY)

    async def feed(self, member: Member) -> None:
        """Every `interval` s a reading, from when streaming starts until stopping."""
        await self.streaming.wait()
        loop = asyncio.get_running_loop()
        next_at = self.started_at + self.interval * member.index / len(self.members)
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), max(0.0, next_at - loop.time()))
            if self.stopping.is_set():
                return
            self.send(member, str(member.seq))
            member.seq += 1
            next_at += self.interval

    async def serve(self, member: Member, gate: asyncio.Semaphore, drain: float) -> None:
        """Open the device's first connection (with at most `at_once` others opening),
        then run it: it reconnects by itself, and drains once its feed stops."""
        device = member.device
        async with gate:
            try:
                await device.connect()
            except (OSError, InvalidHandshake, TimeoutError):
                pass  # run() tries again, with backoff
            else:
                self.opened_by(member)
        try:
            await device.run(self.feed(member), drain_timeout=drain)
        finally:
            await device.close()

    # --- the commands --------------------------------------------------------------

    async def connect(self, command: dict) -> dict:
        gate = asyncio.Semaphore(self.at_once)
        drain = float(command.get("drain", 60))
        started = time.monotonic()
        self.runs = [asyncio.create_task(self.serve(m, gate, drain)) for m in self.members]
        await self._until(lambda: self.opened >= len(self.members), command.get("timeout", 300))
        return {"open": self.opened, "seconds": round(time.monotonic() - started, 2)}

    async def stream(self, command: dict) -> dict:
        self.phase = command["phase"]
        if not self.streaming.is_set():
            self.started_at = asyncio.get_running_loop().time()
            self.streaming.set()
        return {"phase": self.phase}

    async def arm(self, command: dict) -> dict:
        self.armed_at = time.monotonic()
        return await self.stream(command)

    async def recovered(self, command: dict) -> dict:
        """Each device that reconnected since "arm": when it did, and when the reading it
        sent at once was acked (seconds after "arm"; None: not yet)."""
        home = command.get("home")
        members = [m for m in self.members if home is None or m.device.urls[0] == home]
        await self._until(
            lambda: all(self._recovery_acked(m) is not None for m in members),
            command.get("timeout", 120),
        )
        reopened = [m for m in members if m.reopened_at is not None]
        return {
            "reopened": [round(m.reopened_at - self.armed_at, 3) for m in reopened],
            "acked": [self._since_armed(self._recovery_acked(m)) for m in reopened],
            "not_reopened": len(members) - len(reopened),
        }

    def _recovery_acked(self, member: Member) -> float | None:
        return self.outcomes.acked.get(f"{member.index}-{RECOVERY}")

    def _since_armed(self, moment: float | None) -> float | None:
        return None if moment is None else round(moment - self.armed_at, 3)

    async def drain(self, command: dict) -> dict:
        self.stopping.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self.runs), command.get("timeout", 90))
        return self.tally()

    def tally(self) -> dict:
        """Every reading's fate: per meter, per phase, and the outcomes' counters."""
        sent, acked = Counter(), Counter()
        latencies: dict[str, list[float]] = {}
        for rid, phase in self.phase_of.items():
            member = self.members[int(rid.partition("-")[0])]
            sent[member.meter] += 1
            if rid in self.outcomes.acked:
                acked[member.meter] += 1
                seconds = self.outcomes.acked[rid] - self.outcomes.sent[rid]
                latencies.setdefault(phase, []).append(round(seconds * 1000, 2))
        o = self.outcomes
        counts = ("acks", "duplicates", "busy", "busy_readings", "resent", "late", "reconnects")
        return {
            "sent": dict(sent),
            "acked": dict(acked),
            "latencies_ms": latencies,
            "unanswered": sum(len(m.device.waiting) for m in self.members),
            "errors": len(o.errors) + len(o.frame_errors),
            "close_codes": dict(Counter(str(code) for code in o.close_codes)),
            **{name: getattr(o, name) for name in counts},
        }

    async def _until(self, done, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)


class Swarm:
    """The scenario's side: `processes` swarm processes sharing the devices (each a dict of
    meter, token and urls), driven together: `command` sends one to every process and
    returns their answers."""

    def __init__(self, devices: list[dict], *, processes: int, log: Path, **plan) -> None:
        self.plans = [
            {"devices": devices[n::processes], **plan} for n in range(processes) if devices[n:]
        ]
        self.log = log
        self.children: list[subprocess.Popen] = []

    def __enter__(self) -> Swarm:
        open_files_raise()
        with self.log.open("ab") as log:
            for plan in self.plans:
                child = subprocess.Popen(
                    [sys.executable, str(Path(__file__).resolve())],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                    cwd=ROOT,
                )
                child.stdin.write(json.dumps(plan) + "\n")
                self.children.append(child)
        return self

    def __exit__(self, *exc_info) -> None:
        for child in self.children:
            if child.poll() is None:
                child.kill()
            child.wait()

    def command(self, cmd: str, **fields) -> list[dict]:
        line = json.dumps({"cmd": cmd, **fields}) + "\n"
        for child in self.children:
            child.stdin.write(line)
            child.stdin.flush()
        answers = []
        for child in self.children:
            answer = child.stdout.readline()
            if not answer:
                raise RuntimeError(f"a swarm process ended (status {child.wait()}): {self.log}")
            answers.append(json.loads(answer))
        return answers


def recovery(answers: list[dict]) -> dict:
    """The swarm processes' "recovered" answers as figures, in seconds after "arm": when
    the first and the last device reconnected, when half and all of them had the reading
    they sent on reconnecting acked (None: some never did), and how many never did."""
    reopened = [s for answer in answers for s in answer["reopened"]]
    acked = [s for answer in answers for s in answer["acked"]]
    missing = sum(answer["not_reopened"] for answer in answers) + acked.count(None)
    acked = sorted(s for s in acked if s is not None)
    return {
        "first_reconnected_s": min(reopened, default=None),
        "all_reconnected_s": max(reopened, default=None),
        "half_acked_s": acked[len(acked) // 2] if acked else None,
        "all_acked_s": acked[-1] if acked and not missing else None,
        "not_recovered": missing,
    }


def _reraise(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        logging.getLogger(__name__).error("send failed", exc_info=task.exception())


async def _serve_commands(swarm_plan: dict, lines: asyncio.StreamReader) -> None:
    swarm = SwarmProcess.from_plan(swarm_plan)
    while raw := await lines.readline():
        command = json.loads(raw)
        answer = await getattr(swarm, command["cmd"])(command)
        print(json.dumps({"event": command["cmd"], "cpu_s": cpu_seconds(), **answer}), flush=True)
        if command["cmd"] == "drain":
            return


async def _main() -> None:
    open_files_raise()
    # A fleet's drops and reconnects would be thousands of warning lines.
    logging.basicConfig(level=logging.ERROR)
    loop = asyncio.get_running_loop()
    lines = asyncio.StreamReader(limit=2**30)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(lines), sys.stdin)
    plan = json.loads(await lines.readline())
    await _serve_commands(plan, lines)


if __name__ == "__main__":
    asyncio.run(_main())
