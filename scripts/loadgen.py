"""Drive a running Meterline with real WebSocket devices and measure what they get back.

    python scripts/loadgen.py --url http://127.0.0.1:8000 --key <operator key> \
        --devices 20 --batch 100 --in-flight 4 --seconds 10
    python scripts/loadgen.py --url http://127.0.0.1:8000 --key <operator key> \
        --devices 20 --rate 1000 --dashboard --seconds 60
    python scripts/loadgen.py ... --credit-control    # the same load on a prepaid account

Provisions one account (or --accounts, the meters dealt round robin), a per-unit
tariff and N delta meters through the REST API. Without --rate, each device
keeps `--in-flight` unacked frames of `--batch` readings in the air (closed
loop: as fast as the server acks). With --rate, the devices send single
readings on a fixed schedule that adds up to that many readings/s (open loop),
and with --dashboard a dashboard socket watches each account, to time each
reading from its send to its charge event. Several --url (daphne processes)
spread the devices over them, round robin.

With --credit-control each account is also prepaid (CONTRACT.md section 6): a
credit no run can spend, a cut-off line at 0 and three alerts (spend_above,
usage_above, balance_below) that every batch evaluates and none reaches, so the
same load with and without it prices credit control. At the end its balance must
be the credit less the charged total, not cut off, and no alert fired.

Devices are clients/device.py's, doing what the contract asks of them: readings
answered `busy` are resent after `retry_after_ms`, readings without an answer
after RESEND_AFTER seconds are resent, and both are counted; a device that has
to reconnect is a failed run. At the end each account's charged total must
equal the usage acked, to the last decimal, and the dashboards must have seen
every acked reading; exit status 1 when a check fails.

Output: "loadgen: streaming" when the clock starts and "loadgen: drained" when
every reading is answered (scripts/bench.py samples CPU at these lines), a
human summary, and last a JSON line with every figure.
"""

import argparse
import asyncio
import contextlib
import json
import math
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as scripts/loadgen.py

from clients.device import Device, Outcomes, meters_url

UNIT_PRICE = Decimal("0.25")
# Seconds without an answer before a device resends a reading: the channel
# layer delivers at most once, the reading id makes the resend harmless.
RESEND_AFTER = 10.0
# Seconds to wait, once sending stops, for the last answers and charge events.
DRAIN_TIMEOUT = 60.0
DASHBOARD_GRACE = 10.0
# Default cap of unacked frames per device with --rate: the server's own
# METERLINE_MAX_IN_FLIGHT, beyond which it would answer `busy` anyway.
PACED_IN_FLIGHT = 32
# --credit-control: a credit no run can spend (a 15 s run at 15,000 readings/s charges
# about 56,000), and thresholds no run reaches, checked on every charge all the same.
CREDIT = Decimal("1000000000")
CUTOFF_AT = "0"
ALERTS = (
    ("spend_above", "500000000"),
    ("usage_above", "1000000000"),
    ("balance_below", "100000000"),
)


def api(base: str, key: str, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        base + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def percentiles_ms(samples: list[float]) -> dict[str, float | None]:
    """p50, p99 and max of latencies in seconds, in milliseconds (nearest rank)."""
    if not samples:
        return {"p50": None, "p99": None, "max": None}
    ordered = sorted(samples)

    def rank(q: float) -> float:
        return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000, 1)

    return {"p50": rank(0.50), "p99": rank(0.99), "max": round(ordered[-1] * 1000, 1)}


@dataclass
class Stats(Outcomes):
    """Shared by every device of the run (clients.device's record of answers, resends and
    latencies, plus the run's own counts); all times are loop.time() seconds."""

    deadline: float = 0.0
    frames: int = 0  # first sends only
    unanswered: int = 0

    def answered_in_window(self) -> int:
        """Readings acked before the deadline: the throughput figure."""
        return sum(1 for at in self.acked.values() if at <= self.deadline)


class LoadDevice:
    """One meter sending new frames, closed loop or paced; its clients.device.Device
    settles the answers and resends what needs it."""

    def __init__(
        self, url: str, token: str, index: int, args, stats: Stats, device_class=Device
    ) -> None:
        """`device_class`: Device or a subclass that also listens to other messages."""
        self.device = device_class(
            url,
            token,
            name=f"device {index}",
            resend_after=RESEND_AFTER,
            outcomes=stats,
            max_queue=None,
        )
        self.index = index
        self.args = args
        self.stats = stats
        self.window = asyncio.Semaphore(args.in_flight)
        self.next_seq = 0
        self.answered = asyncio.Event()

    async def run(self, started: float, *, listen_until: asyncio.Event | None = None) -> None:
        """Send until the deadline, then wait for the last answers. With `listen_until`,
        stay connected after them until it is set: what the server sends later (a
        cut-off, say) is still heard. `answered` is set once the answers are in."""
        sending = self.send_paced(started) if self.args.rate else self.send_closed_loop()
        if listen_until is not None:
            sending = self.listen_after(sending, listen_until)
        await self.device.run(sending, drain_timeout=DRAIN_TIMEOUT)
        self.stats.unanswered += len(self.device.waiting)
        self.answered.set()

    async def listen_after(self, sending: Awaitable[None], until: asyncio.Event) -> None:
        await sending
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DRAIN_TIMEOUT
        while self.device.waiting and loop.time() < deadline:
            await asyncio.sleep(0.05)
        self.answered.set()
        await until.wait()

    async def send_closed_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while loop.time() < self.stats.deadline:
            await self.window.acquire()
            if loop.time() >= self.stats.deadline:
                self.window.release()
                return
            await self.send_new(self.args.batch)

    async def send_paced(self, started: float) -> None:
        """Single readings every devices/rate seconds, devices offset from each other."""
        loop = asyncio.get_running_loop()
        interval = self.args.devices / self.args.rate
        next_at = started + interval * self.index / self.args.devices
        while next_at < self.stats.deadline:
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.window.acquire()
            await self.send_new(1)
            next_at += interval

    async def send_new(self, count: int) -> None:
        """A frame of `count` new readings; its window slot is free once all are answered."""
        ts = datetime.now(UTC).isoformat()
        first = self.next_seq
        self.next_seq += count
        readings = [
            {"id": f"d{self.index}-{seq}", "ts": ts, "quantity": "1"}
            for seq in range(first, self.next_seq)
        ]
        self.stats.frames += 1
        frame = await self.device.send(readings)
        frame.done.add_done_callback(lambda _: self.window.release())


class Dashboard:
    """The account's dashboard socket: when each reading id first shows in a charge event,
    and when each alert (by its event id: told at least once) first arrives."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.seen: dict[str, float] = {}
        self.repeated = 0  # reading ids in more than one charge event
        self.kinds: Counter = Counter()
        self.alerts: dict[str, tuple[float, dict]] = {}  # event id -> (first seen, alert)
        self.alerts_repeated = 0

    async def read(self) -> None:
        loop = asyncio.get_running_loop()
        async for raw in self.ws:
            message = json.loads(raw)
            now = loop.time()
            self.kinds[message.get("type")] += 1
            if message.get("type") == "alert":
                self.alert_seen(message, now)
            if message.get("type") != "charge":
                continue
            for rid in message.get("reading_ids", []):
                if rid in self.seen:
                    self.repeated += 1
                else:
                    self.seen[rid] = now

    def alert_seen(self, message: dict, now: float) -> None:
        if message["id"] in self.alerts:
            self.alerts_repeated += 1
        else:
            self.alerts[message["id"]] = (now, message)


async def dashboards_wait(dashboards: list[Dashboard], ids: set[str], timeout: float) -> None:
    """Until the dashboards together have shown every one of `ids`, at most `timeout` s."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if not ids.difference(*(dashboard.seen.keys() for dashboard in dashboards)):
            return
        await asyncio.sleep(0.1)


def account_create(base: str, key: str, name: str = "load") -> dict:
    body = {"name": name, "currency": "EUR", "timezone": "UTC"}
    return api(base, key, "POST", "/api/v1/accounts/", body)


def tariff_create(base: str, key: str, unit_price: Decimal) -> dict:
    body = {
        "name": "load",
        "currency": "EUR",
        "unit": "kWh",
        "billing_period": "month",
        "model": "per_unit",
        "unit_price": str(unit_price),
    }
    return api(base, key, "POST", "/api/v1/tariffs/", body)


def meter_create(base: str, key: str, *, account: str, tariff: str, name: str) -> str:
    """A delta meter; its device token."""
    body = {"account": account, "tariff": tariff, "name": name, "kind": "delta"}
    return api(base, key, "POST", "/api/v1/meters/", body | {"rollover_at": None})["token"]


def provision(base: str, key: str, devices: int) -> tuple[dict, list[str]]:
    """One account with `devices` meters; the account and the meters' tokens."""
    accounts, tokens = provision_accounts(base, key, devices, 1)
    return accounts[0], tokens


def provision_accounts(
    base: str, key: str, devices: int, accounts: int
) -> tuple[list[dict], list[str]]:
    """`accounts` accounts, meter i on account i % accounts; their tokens in meter order."""
    made = [account_create(base, key) for _ in range(accounts)]
    tariff = tariff_create(base, key, UNIT_PRICE)
    tokens = [
        meter_create(base, key, account=made[i % accounts]["id"], tariff=tariff["id"], name=f"m{i}")
        for i in range(devices)
    ]
    return made, tokens


def credit_add(base: str, key: str, account: str, amount: Decimal, idempotency_key: str) -> dict:
    """A credit (CONTRACT.md section 6): the ledger entry, with its balance_after."""
    body = {"amount": str(amount), "description": "load", "idempotency_key": idempotency_key}
    return api(base, key, "POST", f"/api/v1/accounts/{account}/credits/", body)


def credit_control_arm(base: str, key: str, account: str) -> None:
    """--credit-control: prepaid, with a cut-off line and three alerts, none ever reached."""
    credit_add(base, key, account, CREDIT, "load-credit")
    api(base, key, "PATCH", f"/api/v1/accounts/{account}/", {"cutoff_at": CUTOFF_AT})
    for kind, threshold in ALERTS:
        body = {"kind": kind, "threshold": threshold, "meter": None}
        api(base, key, "POST", f"/api/v1/accounts/{account}/alerts/", body)


def credit_control_check(base: str, key: str, account: str, total: Decimal) -> tuple[dict, list]:
    """After a --credit-control run: the balance, the cut-off and the alerts; problems."""
    balance = api(base, key, "GET", f"/api/v1/accounts/{account}/balance/")
    alerts = api(base, key, "GET", f"/api/v1/accounts/{account}/alerts/")
    fired = [alert["kind"] for alert in alerts if alert["last_fired_at"] is not None]
    found = {"balance": balance["balance"], "cut_off": balance["cut_off"], "fired": fired}
    problems = []
    if Decimal(balance["balance"]) != CREDIT - total:
        problems.append(f"balance {balance['balance']} != {CREDIT} - {total}")
    if balance["cut_off"]:
        problems.append("the account was cut off")
    if fired or len(alerts) != len(ALERTS):
        problems.append(f"alerts fired: {fired} (of {len(alerts)})")
    return found | {"ok": not problems}, problems


async def open_dashboard(
    sockets: contextlib.AsyncExitStack, base: str, key: str, account: str
) -> Dashboard:
    dashboard_key = api(base, key, "POST", f"/api/v1/accounts/{account}/dashboard-keys/")["key"]
    ws = await sockets.enter_async_context(
        connect(
            base.replace("http", "ws", 1) + f"/ws/accounts/{account}/",
            additional_headers={"Authorization": f"Bearer {dashboard_key}"},
            max_queue=None,
        )
    )
    # The snapshot comes once the socket has joined the account's group.
    snapshot = json.loads(await asyncio.wait_for(ws.recv(), 20))
    if snapshot.get("type") != "snapshot":
        raise RuntimeError(f"the dashboard's first message is not a snapshot: {snapshot}")
    return Dashboard(ws)


def settled_total(base: str, key: str, account: str, expected: Decimal) -> Decimal:
    """The account's total; acks come after commit, so it should match at once (5 s grace)."""
    deadline = time.monotonic() + 5
    while True:
        total = Decimal(api(base, key, "GET", f"/api/v1/accounts/{account}/usage/")["total"])
        if total == expected or time.monotonic() > deadline:
            return total
        time.sleep(0.5)


async def stream(
    args, bases: list[str], accounts: list[str], tokens: list[str], stats: Stats
) -> dict:
    """Connect the devices (and a dashboard on each account), stream until the deadline
    and every answer is in; the wall and client CPU time it took and what the dashboards
    saw."""
    loop = asyncio.get_running_loop()
    async with contextlib.AsyncExitStack() as sockets:
        dashboards = []
        for account in accounts if args.dashboard else ():
            dashboard = await open_dashboard(sockets, bases[0], args.key, account)
            sockets.callback(asyncio.create_task(dashboard.read()).cancel)
            dashboards.append(dashboard)
        devices = []
        for index, token in enumerate(tokens):
            device = LoadDevice(meters_url(bases[index % len(bases)]), token, index, args, stats)
            await device.device.connect()
            sockets.push_async_callback(device.device.close)
            devices.append(device)

        print("loadgen: streaming", flush=True)
        cpu_started = time.process_time()
        started = loop.time()
        stats.deadline = started + args.seconds
        await asyncio.gather(*(device.run(started) for device in devices))
        elapsed = loop.time() - started
        client_cpu = time.process_time() - cpu_started
        print("loadgen: drained", flush=True)

        dashboard_result = None
        if dashboards:
            await dashboards_wait(dashboards, set(stats.acked), DASHBOARD_GRACE)
            dashboard_result = dashboard_outcome(dashboards, stats)
    return {"elapsed": elapsed, "client_cpu": client_cpu, "dashboard": dashboard_result}


def dashboard_outcome(dashboards: list[Dashboard], stats: Stats) -> dict:
    """What the dashboards saw together (each reading shows on its own account's)."""
    seen = {rid: at for dashboard in dashboards for rid, at in dashboard.seen.items()}
    latencies = [seen[rid] - stats.sent[rid] for rid in stats.acked if rid in seen]
    return {
        "readings_seen": len(seen),
        "missing": len(stats.acked.keys() - seen.keys()),
        "repeated": sum(dashboard.repeated for dashboard in dashboards),
        "alerts": sum(len(dashboard.alerts) for dashboard in dashboards),
        "events": dict(sum((dashboard.kinds for dashboard in dashboards), Counter())),
        "charge_ms": percentiles_ms(latencies),
    }


def run_problems(
    stats: Stats, *, total: Decimal, expected: Decimal, dashboard: dict | None
) -> list[str]:
    """What makes the run fail: anything but every reading acked and charged once."""
    errors = [*stats.errors.values(), *stats.frame_errors]
    problems = []
    if total != expected:
        problems.append(f"charged total {total} != {expected} for the readings acked")
    if stats.unanswered:
        problems.append(f"{stats.unanswered} readings never answered")
    if errors:
        problems.append(f"{len(errors)} errors, first {errors[0]}")
    if stats.reconnects:
        problems.append(f"devices reconnected {stats.reconnects} times ({stats.close_codes})")
    if not stats.acked:
        problems.append("no reading was acked")
    if dashboard and dashboard["missing"]:
        problems.append(f"the dashboard missed {dashboard['missing']} acked readings")
    if dashboard and dashboard["alerts"]:
        problems.append(f"the dashboard was told {dashboard['alerts']} alerts")
    return problems


def stats_figures(stats: Stats, seconds: float) -> dict:
    """The devices' figures of the run: throughput, latency, resends, answers."""
    return {
        "sent": len(stats.sent),
        "frames": stats.frames,
        "answered": len(stats.acked),
        "readings_per_s": round(stats.answered_in_window() / seconds, 1),
        "sent_per_s": round(len(stats.sent) / seconds, 1),
        "ack_ms": percentiles_ms(stats.latencies()),
        "duplicates": stats.duplicates,
        "busy": stats.busy_readings,
        "resent_unanswered": stats.resent,
        "late_answers": stats.late,
        "unanswered": stats.unanswered,
        "errors": len(stats.errors) + len(stats.frame_errors),
        "other_answers": dict(stats.others),
    }


def totals_check(base: str, key: str, accounts: list[str], stats: Stats) -> dict:
    """Each account's charged total against the usage acked on its meters (meter i is on
    account i % accounts); the sums and the accounts that differ."""
    acked = Counter(int(rid.split("-")[0][1:]) % len(accounts) for rid in stats.acked)
    expected = [acked[n] * UNIT_PRICE for n in range(len(accounts))]
    totals = [
        settled_total(base, key, account, want)
        for account, want in zip(accounts, expected, strict=True)
    ]
    differ = [n for n, (got, want) in enumerate(zip(totals, expected, strict=True)) if got != want]
    return {"totals": totals, "total": sum(totals), "expected": sum(expected), "differ": differ}


def credit_control_checks(base: str, key: str, accounts: list[str], totals: list) -> tuple:
    """credit_control_check on every account: what was found (merged), and the problems."""
    found, problems = [], []
    for account, total in zip(accounts, totals, strict=True):
        one, more = credit_control_check(base, key, account, total)
        found.append(one)
        problems += more
    merged = {
        "balance": found[0]["balance"] if len(found) == 1 else [f["balance"] for f in found],
        "cut_off": any(f["cut_off"] for f in found),
        "fired": [kind for f in found for kind in f["fired"]],
        "ok": all(f["ok"] for f in found),
    }
    return merged, problems


async def run(args) -> dict:
    bases = [url.rstrip("/") for url in args.url]
    made, tokens = provision_accounts(bases[0], args.key, args.devices, args.accounts)
    accounts = [account["id"] for account in made]
    for account in accounts if args.credit_control else ():
        credit_control_arm(bases[0], args.key, account)
    stats = Stats()
    streamed = await stream(args, bases, accounts, tokens, stats)
    totals = totals_check(bases[0], args.key, accounts, stats)
    total, expected = totals["total"], totals["expected"]
    problems = run_problems(stats, total=total, expected=expected, dashboard=streamed["dashboard"])
    problems += [f"account {n}: charged {totals['totals'][n]}" for n in totals["differ"]]
    credit = None
    if args.credit_control:
        credit, more = credit_control_checks(bases[0], args.key, accounts, totals["totals"])
        problems += more
    return {
        "mode": "paced" if args.rate else "closed",
        "credit_control": args.credit_control,
        "accounts": args.accounts,
        "devices": args.devices,
        "batch": args.batch,
        "in_flight": args.in_flight,
        "rate": args.rate,
        "seconds": args.seconds,
        "daphnes": len(bases),
        "elapsed_s": round(streamed["elapsed"], 3),
        **stats_figures(stats, args.seconds),
        "dashboard": streamed["dashboard"],
        "credit": credit,
        "total": str(total),
        "expected_total": f"{expected:.6f}",
        "client_cpu_s": round(streamed["client_cpu"], 3),
        "problems": problems,
        "ok": not problems,
    }


def summary(result: dict) -> str:
    if result["mode"] == "paced":
        shape = f"devices={result['devices']} rate={result['rate']:g}/s single readings"
    else:
        shape = (
            f"devices={result['devices']} batch={result['batch']} in_flight={result['in_flight']}"
        )
    ack = result["ack_ms"]
    line = (
        f"{shape}: {result['readings_per_s']:,.0f} readings/s acked "
        f"({result['answered']} in {result['elapsed_s']:.1f} s), "
        f"ack p50 {ack['p50']} ms p99 {ack['p99']} ms max {ack['max']} ms; "
        f"busy {result['busy']} (resent), resent unanswered {result['resent_unanswered']}, "
        f"duplicates {result['duplicates']}; total {result['total']} "
        f"expected {result['expected_total']}"
    )
    if result["dashboard"]:
        dash = result["dashboard"]
        charge = dash["charge_ms"]
        line += (
            f"; dashboard p50 {charge['p50']} ms p99 {charge['p99']} ms, "
            f"missed {dash['missing']}, repeated {dash['repeated']}"
        )
    if result["credit"]:
        credit = result["credit"]
        balance = credit["balance"]
        if isinstance(balance, list):
            balance = f"{min(balance, key=Decimal)} at the least of {len(balance)} accounts"
        line += (
            f"; credit control: balance {balance}, cut off {credit['cut_off']}, "
            f"alerts fired {credit['fired'] or 'none'}"
        )
    for problem in result["problems"]:
        line += f"\n  PROBLEM: {problem}"
    return line


def target_arguments(parser: argparse.ArgumentParser) -> None:
    """--url (one per daphne process) and --key (an operator key): the stack to drive."""
    parser.add_argument(
        "--url", nargs="+", default=["http://127.0.0.1:8000"], help="one per daphne process"
    )
    parser.add_argument("--key", required=True, help="operator API key")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    target_arguments(parser)
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument(
        "--accounts", type=int, default=1, help="the devices spread over this many accounts"
    )
    parser.add_argument("--batch", type=int, default=100, help="readings per frame")
    parser.add_argument("--in-flight", type=int, default=None, help="unacked frames per device")
    parser.add_argument("--rate", type=float, default=None, help="readings/s of all devices")
    parser.add_argument(
        "--dashboard", action="store_true", help="watch each account's charges (a socket each)"
    )
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument(
        "--credit-control",
        action="store_true",
        help="a prepaid account with a cut-off line and three alerts that never fire",
    )
    args = parser.parse_args()
    if args.rate:
        args.batch = 1
    if args.in_flight is None:
        args.in_flight = PACED_IN_FLIGHT if args.rate else 4
    args.accounts = max(1, min(args.accounts, args.devices))

    result = asyncio.run(run(args))
    print(summary(result))
    print(json.dumps(result), flush=True)
    if not result["ok"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
