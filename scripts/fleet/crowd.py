"""Many accounts' devices and dashboards at once, for the accounts and fan-out scenarios.

    crowd = crowd_provision(stack, accounts=500, meters=4, keys=1)
    results = crowd_run(plans, seconds=30)      # one client process per plan

Provisioning: one account, its tariff, meter and dashboard key are made through the
operator API; the other accounts, meters and keys are copies of them made in one bulk
insert by a Django process against the stack's database (the API makes a few dozen
rows a second here), rated exactly as the first. A crowd is reused by later runs on
the same stack: each run's reading ids are its own.

Each plan runs in a client process of its own (this file with --client: one event loop
cannot serve thousands of sockets and count them on these cores), holding whole accounts:
their devices (clients/device.py, which resend what is unanswered) and dashboards. The
processes connect, say "ready", stream from one moment of the shared monotonic clock
until the deadline, wait for the last acks and charge events, and answer one JSON line
per account: acks and their latency, and for each dashboard whether it saw every
charge event in order (gaps, repeats, mid-stream snapshots) and how late. Latencies
are kept as histograms of whole milliseconds, so that processes' figures add up.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import math
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake

REPO_ROOT = Path(__file__).resolve().parents[2]
UNIT_PRICE = Decimal("0.25")  # per kWh; every reading of the crowd is 1 kWh
CONNECT_AT_ONCE = 20  # handshakes a client process has open at a time
CONNECT_TRIES = 5  # before streaming, a refused handshake (a loaded daphne) is tried again
DRAIN_SECONDS = 30.0  # after the deadline, for the last answers and charge events
RESEND_AFTER = 10.0


# --- Provisioning (the scenario's process) -------------------------------------------


@dataclass
class CrowdAccount:
    id: str
    tokens: list[str]
    keys: list[str]
    acked: int = 0  # readings acked over every run so far: what its total must be


@dataclass
class Crowd:
    accounts: list[CrowdAccount]
    runs: int = 0


def api(stack, method: str, path: str, body: dict | None = None) -> Any:
    request = urllib.request.Request(
        stack.http_base + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {stack.operator_key}",
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def crowd_provision(stack, *, accounts: int, meters: int, keys: int) -> Crowd:
    """`accounts` accounts of `meters` delta meters and `keys` dashboard keys each."""
    account = api(
        stack,
        "POST",
        "/api/v1/accounts/",
        {"name": "crowd-0", "currency": "EUR", "timezone": "UTC"},
    )
    tariff = api(stack, "POST", "/api/v1/tariffs/", _tariff())
    meter = {"account": account["id"], "tariff": tariff["id"], "name": "m0", "kind": "delta"}
    first = api(stack, "POST", "/api/v1/meters/", meter | {"rollover_at": None})
    key = api(stack, "POST", f"/api/v1/accounts/{account['id']}/dashboard-keys/")["key"]
    plan = {"account": account["id"], "meter": first["id"], "accounts": accounts - 1}
    plan |= {"meters": meters, "keys": keys}
    copies = _django(stack, "--copies", plan)
    head = CrowdAccount(account["id"], [first["token"], *copies["first_tokens"]], [key])
    head.keys += copies["first_keys"]
    rest = [CrowdAccount(c["id"], c["tokens"], c["keys"]) for c in copies["accounts"]]
    crowd = Crowd([head, *rest])
    if hasattr(stack, "secrets"):  # the integration tests check no log shows one
        stack.secrets.update(s for a in crowd.accounts for s in (*a.tokens, *a.keys))
    return crowd


def _tariff() -> dict:
    return {
        "name": "crowd",
        "currency": "EUR",
        "unit": "kWh",
        "billing_period": "month",
        "model": "per_unit",
        "unit_price": str(UNIT_PRICE),
    }


def _django(stack, command: str, payload: dict) -> dict:
    """This file's Django side, in a process pointed at the stack's database, on the code
    the stack runs (another checkout's, when a run measures code before a change)."""
    root = Path(inspect.getfile(type(stack))).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), command, str(root)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        cwd=root,
        env=stack.app_env(),
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"crowd {command} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout)


def crowd_copies(plan: dict) -> dict:
    """In a Django process: copies of the account `plan["account"]` (its fields, and meters
    like its meter `plan["meter"]`), the first one's missing meters and keys too."""
    from django.db import transaction

    from billing.models import Account
    from metering.models import Meter, MeterTariff

    like = Account.objects.get(pk=plan["account"])
    meter = Meter.objects.get(pk=plan["meter"])
    tariff = MeterTariff.objects.filter(meter=meter).latest("effective_from").tariff_id
    with transaction.atomic():
        fields = {f.attname: getattr(like, f.attname) for f in Account._meta.concrete_fields}
        fields.pop("id")
        accounts = Account.objects.bulk_create(
            Account(**(fields | {"name": f"crowd-{n + 1}"})) for n in range(plan["accounts"])
        )
        first_tokens = _meters(like, meter, tariff, plan["meters"] - 1)
        first_keys = _keys(like, plan["keys"] - 1)
        made = [
            {
                "id": account.id,
                "tokens": _meters(account, meter, tariff, plan["meters"]),
                "keys": _keys(account, plan["keys"]),
            }
            for account in accounts
        ]
    return {"first_tokens": first_tokens, "first_keys": first_keys, "accounts": made}


def _meters(account, like, tariff: str, count: int) -> list[str]:
    from billing.keys import new_secret, secret_hash
    from metering.models import Meter, MeterTariff

    tokens = [new_secret("mtk") for _ in range(count)]
    meters = Meter.objects.bulk_create(
        Meter(account=account, name=f"m{n}", kind=like.kind, token_hash=secret_hash(token))
        for n, token in enumerate(tokens)
    )
    MeterTariff.objects.bulk_create(
        MeterTariff(meter=m, tariff_id=tariff, effective_from=m.created_at) for m in meters
    )
    return tokens


def _keys(account, count: int) -> list[str]:
    from billing.keys import new_secret, secret_hash
    from billing.models import DashboardKey

    keys = [new_secret("dbk") for _ in range(count)]
    DashboardKey.objects.bulk_create(
        DashboardKey(account=account, key_hash=secret_hash(key)) for key in keys
    )
    return keys


def crowd_settled(stack, timeout: float = 120.0) -> float:
    """Wait until the stack holds no device or dashboard connection (the last run's
    disconnects are handled, not counted in the next run); the seconds it took."""
    names = ("meterline_device_connections", "meterline_dashboard_connections")
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        request = urllib.request.Request(
            stack.http_base + "/metrics",
            headers={"Authorization": f"Bearer {stack.operator_key}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            lines = response.read().decode().splitlines()
        held = sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(names))
        if held <= 0:
            break
        time.sleep(0.5)
    return round(time.monotonic() - started, 1)


def totals_wrong(stack, accounts: list[CrowdAccount]) -> list[str]:
    """Each account whose open-period total is not its acked readings' price, to the cent."""

    def wrong(account: CrowdAccount) -> str | None:
        total = Decimal(api(stack, "GET", f"/api/v1/accounts/{account.id}/usage/")["total"])
        expected = account.acked * UNIT_PRICE
        return None if total == expected else f"{account.id}: total {total} != {expected}"

    with ThreadPoolExecutor(8) as pool:
        return [problem for problem in pool.map(wrong, accounts) if problem]


# --- Running client processes (the scenario's process) -------------------------------


def crowd_run(
    plans: list[dict], *, seconds: float, hooks: dict | None = None
) -> tuple[list[dict], float]:
    """Start a client process per plan, stream `seconds` from one moment; each account's
    figures (every process's, together), and the CPU seconds the clients spent streaming.
    `hooks`: "streaming" and "streamed" are called then (a profiler's start and stop)."""
    hooks = hooks or {}
    procs = [_client_start(plan | {"seconds": seconds}) for plan in plans]
    try:
        for proc in procs:
            _expect(proc, "ready", timeout=300)
        start = time.monotonic() + 1.0
        for proc in procs:
            proc.stdin.write(json.dumps({"go": start}) + "\n")
            proc.stdin.flush()
        hooks.get("streaming", lambda: None)()
        results, cpu = [], 0.0
        for proc in procs:
            answer = _expect(proc, "accounts", timeout=seconds + DRAIN_SECONDS + 120)
            results += answer["accounts"]
            cpu += answer["cpu"]
        hooks.get("streamed", lambda: None)()
        for proc in procs:  # once it has closed its sockets
            proc.wait(timeout=120)
        return results, cpu
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()


def _client_start(plan: dict) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--client"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    proc.stdin.write(json.dumps(plan) + "\n")
    proc.stdin.flush()
    return proc


def _expect(proc: subprocess.Popen, key: str, *, timeout: float) -> dict:
    """The process's next JSON line that has `key`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"a crowd client ended (exit {proc.wait()}) before {key!r}")
        with contextlib.suppress(json.JSONDecodeError):
            message = json.loads(line)
            if key in message:
                return message
    raise RuntimeError(f"no {key!r} from a crowd client in {timeout:.0f} s")


# --- Figures --------------------------------------------------------------------------


def hist_add(hist: dict, seconds: float) -> None:
    """Count a latency in its whole millisecond (rounded up)."""
    bucket = max(0, math.ceil(seconds * 1000))
    hist[bucket] = hist.get(bucket, 0) + 1


def hist_merge(hists) -> Counter:
    merged: Counter = Counter()
    for hist in hists:
        merged.update({int(ms): n for ms, n in hist.items()})
    return merged


def hist_quantiles(hist) -> dict[str, float | None]:
    """p50, p99 and max in milliseconds (nearest rank, to the millisecond above)."""
    total = sum(hist.values())
    if not total:
        return {"p50": None, "p99": None, "max": None}
    found, seen = {}, 0
    for ms in sorted(hist):
        seen += hist[ms]
        for name, q in (("p50", 0.50), ("p99", 0.99)):
            if name not in found and seen >= math.ceil(q * total):
                found[name] = float(ms)
    return {**found, "max": float(max(hist))}


def crowd_plans(
    accounts: list[CrowdAccount], *, url: str, run: str, shape: dict, dashboards: int, clients: int
) -> list[dict]:
    """The accounts spread over `clients` client processes, whole accounts each: every
    device of `shape` ({"batch", and "interval" or "in_flight"}), `dashboards` dashboards
    an account (its keys in turn)."""
    plans = [{"url": url, "run": run, "accounts": []} for _ in range(clients)]
    for n, account in enumerate(accounts):
        plans[n % clients]["accounts"].append(
            {
                "id": account.id,
                "tokens": account.tokens,
                "keys": account.keys,
                "dashboards": dashboards,
                "shape": shape,
            }
        )
    return [plan for plan in plans if plan["accounts"]]


def crowd_figures(results: list[dict], seconds: float) -> dict:
    """What the devices and dashboards of these accounts got, together."""
    ack = hist_merge(result["ack_ms"] for result in results)
    shown = hist_merge(result["dashboard_ms"] for result in results)
    figures = {
        "readings_per_s": round(sum(r["acked_in_window"] for r in results) / seconds, 1),
        "acked": sum(r["acked"] for r in results),
        "ack_ms": hist_quantiles(ack),
        "busy": sum(r["busy"] for r in results),
        "resent": sum(r["resent"] for r in results),
    }
    if any(result["dashboards"] for result in results):
        figures["dashboard_ms"] = hist_quantiles(shown)
        figures["dashboards"] = sum(result["dashboards"] for result in results)
    return figures


def crowd_problems(results: list[dict]) -> list[str]:
    """Anything but every reading acked, charged once and shown in order on every dashboard
    (the totals are checked by totals_wrong)."""
    problems = []
    for name in ("unanswered", "errors", "reconnects", "gaps", "repeats", "resyncs", "behind"):
        count = sum(result[name] for result in results)
        if count:
            problems.append(f"{count} {name}")
    for name, what in (
        ("missing", "acked readings no dashboard showed"),
        ("doubled", "shown twice"),
    ):
        count = sum(result[name] for result in results)
        if count:
            problems.append(f"{count} {what}")
    return problems


def crowd_acked(crowd: Crowd, results: list[dict]) -> None:
    """Count the run's acked readings into each account's expected total."""
    acked = {result["id"]: result["acked"] for result in results}
    for account in crowd.accounts:
        account.acked += acked.get(account.id, 0)


# --- The client process ---------------------------------------------------------------


@dataclass
class AccountLog:
    """One account in a client process: its devices' outcomes, and the charge events its
    dashboards saw (reading ids once per event number, the oldest send of each)."""

    account: str
    outcomes: Any
    watched: bool  # it has dashboards here
    events: dict[int, float] = field(default_factory=dict)  # seq -> oldest send in it
    ids_shown: Counter = field(default_factory=Counter)  # reading id -> events showing it
    final: int = 0  # the highest event number seen

    def oldest_sent(self, seq: int, reading_ids: list[str]) -> float:
        if seq not in self.events:
            sent = self.outcomes.sent
            self.events[seq] = min((sent[r] for r in reading_ids if r in sent), default=0.0)
            self.ids_shown.update(reading_ids)
            self.final = max(self.final, seq)
        return self.events[seq]


class Watcher:
    """A dashboard socket: every charge event's number must follow the last one's."""

    def __init__(self, log: AccountLog) -> None:
        self.log = log
        self.last = 0
        self.gaps = self.repeats = self.resyncs = self.charges = 0
        self.latency: dict[int, int] = {}
        self.ws = None

    async def open(self, url: str, key: str) -> None:
        self.ws = await connect(url, additional_headers={"Authorization": f"Bearer {key}"})
        snapshot = json.loads(await asyncio.wait_for(self.ws.recv(), 60))
        assert snapshot["type"] == "snapshot", snapshot
        self.last = snapshot["seq"]

    async def read(self) -> None:
        loop = asyncio.get_running_loop()
        async for raw in self.ws:
            message = json.loads(raw)
            kind = message.get("type")
            if kind == "charge":
                self.charge(message, loop.time())
            elif kind == "snapshot":  # a mid-stream snapshot: events it counts were not shown
                self.resyncs += 1
                self.last = max(self.last, message["seq"])

    def charge(self, event: dict, now: float) -> None:
        seq = event["seq"]
        if seq <= self.last:
            self.repeats += 1
            return
        if seq != self.last + 1:
            self.gaps += 1
        self.last = seq
        self.charges += 1
        sent = self.log.oldest_sent(seq, event["reading_ids"])
        if sent:
            hist_add(self.latency, now - sent)


class Feeder:
    """New frames for one device: paced (a frame every `interval` s) or closed loop
    (`in_flight` frames unanswered at a time), until the deadline."""

    def __init__(self, device, prefix: str, shape: dict, deadline: float) -> None:
        self.device, self.prefix, self.shape, self.deadline = device, prefix, shape, deadline
        self.next = 0

    async def feed(self, start: float, offset: float) -> None:
        if "interval" in self.shape:
            await self._paced(start + offset * self.shape["interval"])
        else:
            await self._closed()

    async def _paced(self, at: float) -> None:
        loop = asyncio.get_running_loop()
        while at < self.deadline:
            await asyncio.sleep(max(0.0, at - loop.time()))
            await self._send()
            at += self.shape["interval"]

    async def _closed(self) -> None:
        window = asyncio.Semaphore(self.shape["in_flight"])
        loop = asyncio.get_running_loop()
        while loop.time() < self.deadline:
            await window.acquire()
            frame = await self._send()
            frame.done.add_done_callback(lambda _: window.release())

    async def _send(self):
        ts = datetime.now(UTC).isoformat()
        first, self.next = self.next, self.next + self.shape["batch"]
        readings = [
            {"id": f"{self.prefix}-{n}", "ts": ts, "quantity": "1"} for n in range(first, self.next)
        ]
        return await self.device.send(readings)


async def connected(gate: asyncio.Semaphore, connect) -> None:
    """`connect()`, at most `gate` at a time, tried again after a failed handshake: the
    connections are made before the clock starts (connect storms are the sockets
    scenario's), so a handshake that a loaded daphne let time out is not a figure here."""
    for attempt in range(CONNECT_TRIES):
        async with gate:
            try:
                return await connect()
            except (OSError, InvalidHandshake, TimeoutError):
                if attempt == CONNECT_TRIES - 1:
                    raise
        await asyncio.sleep(0.5 * (attempt + 1))


def _client_build(plan: dict):
    """The plan's accounts: their logs, watchers (with keys) and devices (with feeders)."""
    from clients.device import Device, Outcomes, meters_url

    logs, watchers, devices = {}, [], []
    for account in plan["accounts"]:
        log = AccountLog(account["id"], Outcomes(), watched=account["dashboards"] > 0)
        logs[account["id"]] = log
        keys = account["keys"]
        watchers += [(Watcher(log), keys[n % len(keys)]) for n in range(account["dashboards"])]
        for n, token in enumerate(account["tokens"]):
            device = Device(
                meters_url(plan["url"]),
                token,
                name=f"{account['id']}/{n}",
                resend_after=RESEND_AFTER,
                outcomes=log.outcomes,
                max_queue=None,
            )
            devices.append((account["id"], device, f"{plan['run']}-{n}", account["shape"]))
    return logs, watchers, devices


async def client(plan: dict) -> dict:
    """Connect the plan's sockets, stream from the "go" moment, report every account."""
    logs, watchers, devices = _client_build(plan)
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)
    url = plan["url"].replace("http", "ws", 1)
    await asyncio.gather(
        *(
            connected(gate, partial(w.open, f"{url}/ws/accounts/{w.log.account}/", key))
            for w, key in watchers
        )
    )
    readers = [asyncio.create_task(watcher.read()) for watcher, _ in watchers]
    await asyncio.gather(*(connected(gate, device.connect) for _, device, _, _ in devices))
    print(json.dumps({"ready": True}), flush=True)
    go = json.loads(await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline))
    start, cpu = go["go"], time.process_time()
    deadline = start + plan["seconds"]
    await asyncio.sleep(max(0.0, start - asyncio.get_running_loop().time()))
    await asyncio.gather(
        *(
            device.run(
                Feeder(device, prefix, shape, deadline).feed(start, n / len(devices)),
                drain_timeout=DRAIN_SECONDS,
            )
            for n, (_, device, prefix, shape) in enumerate(devices)
        )
    )
    await _shown_all(logs, [watcher for watcher, _ in watchers])
    cpu = time.process_time() - cpu
    for reader in readers:
        reader.cancel()
    report = {"accounts": _report(logs, watchers, devices, deadline), "cpu": cpu}
    closing = [device.close() for _, device, _, _ in devices]
    closing += [watcher.ws.close() for watcher, _ in watchers]
    await asyncio.gather(*(limited(gate, close) for close in closing), return_exceptions=True)
    return report


async def limited(gate: asyncio.Semaphore, coroutine) -> Any:
    async with gate:
        return await coroutine


async def _shown_all(logs: dict, watchers: list[Watcher], timeout: float = 15.0) -> None:
    """Until every acked reading is in an event every dashboard of its account has seen."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout

    def done() -> bool:
        watched = [log for log in logs.values() if log.watched]
        if any(not log.outcomes.acked.keys() <= log.ids_shown.keys() for log in watched):
            return False
        return all(watcher.last >= watcher.log.final for watcher in watchers)

    while not done() and loop.time() < end:
        await asyncio.sleep(0.1)


def _report(logs: dict, watchers: list, devices: list, deadline: float) -> list[dict]:
    """Each account's figures: its devices' answers, its dashboards' events."""
    return [
        _account_report(
            log,
            [watcher for watcher, _ in watchers if watcher.log is log],
            sum(len(device.waiting) for account, device, _, _ in devices if account == log.account),
            deadline,
        )
        for log in logs.values()
    ]


def _account_report(log: AccountLog, watchers: list[Watcher], waiting: int, deadline) -> dict:
    outcomes = log.outcomes
    ack: dict[int, int] = {}
    for rid, at in outcomes.acked.items():
        hist_add(ack, at - outcomes.sent[rid])
    return {
        "id": log.account,
        "sent": len(outcomes.sent),
        "acked": len(outcomes.acked),
        "acked_in_window": sum(1 for at in outcomes.acked.values() if at <= deadline),
        "ack_ms": ack,
        "busy": outcomes.busy_readings,
        "resent": outcomes.resent,
        "errors": len(outcomes.errors) + len(outcomes.frame_errors),
        "reconnects": outcomes.reconnects,
        "unanswered": waiting,
        "dashboards": len(watchers),
        "gaps": sum(watcher.gaps for watcher in watchers),
        "repeats": sum(watcher.repeats for watcher in watchers),
        "resyncs": sum(watcher.resyncs for watcher in watchers),
        "behind": sum(watcher.last < log.final for watcher in watchers),
        "dashboard_ms": dict(hist_merge(watcher.latency for watcher in watchers)),
        "missing": len(outcomes.acked.keys() - log.ids_shown.keys()) if watchers else 0,
        "doubled": sum(1 for shown in log.ids_shown.values() if shown > 1),
    }


def _main() -> None:
    import resource

    sys.path.insert(0, sys.argv[2] if sys.argv[1:2] == ["--copies"] else str(REPO_ROOT))
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # a socket is a descriptor
    if sys.argv[1:] == ["--client"]:
        plan = json.loads(sys.stdin.readline())
        print(json.dumps(asyncio.run(client(plan))), flush=True)
    elif sys.argv[1:2] == ["--copies"]:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
        import django

        django.setup()
        json.dump(crowd_copies(json.load(sys.stdin)), sys.stdout)


if __name__ == "__main__":
    _main()
