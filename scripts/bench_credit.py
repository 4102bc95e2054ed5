"""Credit control's crossing latencies on a running Meterline: from the send of the reading
that crosses a threshold to the dashboard's `alert` and to the device's `cutoff`.

    python scripts/bench_credit.py --url http://127.0.0.1:8000 --key <operator key> \
        --accounts 20 --rate 1000 --credit 100 --seconds 30

scripts/bench.py runs it on its stack. Every crossing is at a reading known exactly:
each of --accounts accounts has one delta meter on a tariff of 1 a unit, so each
reading of quantity 1 charges exactly 1; each starts with a credit C (--credit), a
cut-off line at 0 and a balance_below alert at C/2. Its device sends single readings
on a fixed schedule (all devices together --rate readings/s, loadgen's paced mode),
and its dashboard socket (a dashboard key in the Authorization header) watches it.
Each time a device hears `cutoff`, the account is credited C again (a new idempotency
key): that restores it and re-arms the alert, so the next alert and cut-off come C/2
and C units of balance later, again and again through the run.

Afterwards the charges (in rating order, from the API) and the credits (each one's
balance_after says after how many charges it was made) are replayed through the
contract's rules (`crossings`): that gives, per account, the charge numbers where an
alert and a cut-off are due, hence the reading ids that crossed. The i-th alert a
dashboard heard (deduplicated by its event id: told at least once) is matched to the
i-th alert due, likewise the cut-offs, and each latency runs from that reading's first
send to the message's arrival. Checks: every crossing due produced exactly one alert
and one cut-off with the balance due, nothing else came, the charged total of each
account equals the usage acked and its balance the credits less that total, every
reading was answered.

Output: "bench_credit: streaming" and "bench_credit: drained" (scripts/bench.py
samples CPU at these lines), a human summary, and last a JSON line with every figure.
"""

import argparse
import asyncio
import contextlib
import json
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as scripts/bench_credit.py

from loadgen import (  # scripts/loadgen.py, beside this file
    DASHBOARD_GRACE,
    PACED_IN_FLIGHT,
    Dashboard,
    LoadDevice,
    Stats,
    account_create,
    api,
    credit_add,
    meter_create,
    open_dashboard,
    percentiles_ms,
    stats_figures,
    target_arguments,
    tariff_create,
)

from clients.device import Device, meters_url

UNIT_PRICE = Decimal(1)  # each reading (quantity 1) charges exactly 1
CUTOFF_AT = Decimal(0)


class CutoffDevice(Device):
    """clients.device's Device, also reporting `cutoff` and `restore` to `listener`
    (Device itself only counts the messages it does not act on)."""

    listener = None  # (message, loop time) -> None

    def _answer(self, message: dict) -> None:
        if self.listener is not None and message.get("type") in ("cutoff", "restore"):
            self.listener(message, asyncio.get_running_loop().time())
        super()._answer(message)


@dataclass
class Prepaid:
    """One account of the run: its meter's token, its credits, what its device heard."""

    base: str
    key: str
    index: int
    account: str
    token: str
    credit: Decimal
    credits: list[dict] = field(default_factory=list)  # ledger entries, in order
    cutoffs: list[tuple[float, dict]] = field(default_factory=list)  # (heard at, message)
    restores: int = 0
    top_ups: set[asyncio.Task] = field(default_factory=set)

    def heard(self, message: dict, now: float) -> None:
        """A cut-off: credit C again at once (in a thread: the loop times the sockets)."""
        if message["type"] == "restore":
            self.restores += 1
            return
        self.cutoffs.append((now, message))
        task = asyncio.create_task(asyncio.to_thread(self.top_up, len(self.cutoffs)))
        self.top_ups.add(task)

    def top_up(self, n: int) -> None:
        entry = credit_add(self.base, self.key, self.account, self.credit, f"bench-{n}")
        self.credits.append(entry)


def prepaid_provision(base: str, key: str, *, index: int, tariff: str, credit: Decimal) -> Prepaid:
    """An account with one meter, credited C, cut off at 0, a balance_below alert at C/2."""
    account = account_create(base, key, name=f"credit-bench-{index}")["id"]
    token = meter_create(base, key, account=account, tariff=tariff, name="m0")
    prepaid = Prepaid(base, key, index, account, token, credit)
    prepaid.credits.append(credit_add(base, key, account, credit, "bench-0"))
    api(base, key, "PATCH", f"/api/v1/accounts/{account}/", {"cutoff_at": str(CUTOFF_AT)})
    alert = {"kind": "balance_below", "threshold": str(credit / 2), "meter": None}
    api(base, key, "POST", f"/api/v1/accounts/{account}/alerts/", alert)
    return prepaid


# --- The contract's rules, replayed -------------------------------------------------


@dataclass
class Crossings:
    """Where the alert and the cut-off were due: (charge number from 1, balance after it)."""

    alerts: list[tuple[int, Decimal]] = field(default_factory=list)
    cutoffs: list[tuple[int, Decimal]] = field(default_factory=list)
    unarmed: int = 0  # credits that left the balance at or below the alert: no re-arm


def crossings(
    *, charges: int, credited_after: list[int], credit: Decimal, alert_at: Decimal
) -> Crossings:
    """CONTRACT.md section 6 on this run: `charges` charges of 1, a credit of `credit`
    after each number of charges in `credited_after` (the first at 0), a balance_below
    alert at `alert_at` (re-armed by a credit that lifts the balance above it), a cut-off
    line at 0 (lifted by a credit that takes the balance above it)."""
    found = Crossings()
    balance, armed, cut_off = Decimal(0), True, False
    later = sorted(credited_after)
    for number in range(1, charges + 1):
        while later and later[0] < number:  # made before this charge
            later.pop(0)
            balance += credit
            found.unarmed += not armed and balance <= alert_at
            armed = armed or balance > alert_at
            cut_off = cut_off and balance <= CUTOFF_AT
        balance -= UNIT_PRICE
        if armed and balance <= alert_at:
            armed = False
            found.alerts.append((number, balance))
        if not cut_off and balance <= CUTOFF_AT:
            cut_off = True
            found.cutoffs.append((number, balance))
    return found


# --- After the run -------------------------------------------------------------------


def charged_readings(base: str, key: str, account: str) -> list[str]:
    """The reading ids of the account's charges, in rating order (charge id order)."""
    ids: list[str] = []
    after = None
    while True:
        query = {"limit": 1000} | ({"after": after} if after else {})
        path = f"/api/v1/accounts/{account}/charges/?{urllib.parse.urlencode(query)}"
        page = api(base, key, "GET", path)
        ids += [charge["reading_id"] for charge in page["results"]]
        if not page["next"]:
            return ids
        after = page["results"][-1]["id"]


def credit_made_at(entry: dict) -> datetime:
    return datetime.fromisoformat(entry["created_at"])


def credited_after(prepaid: Prepaid) -> list[int]:
    """After how many charges each credit was made: all were C, so the n-th credit's
    balance_after is n*C less the charges before it."""
    return [
        int((n + 1) * prepaid.credit - Decimal(entry["balance_after"]))
        for n, entry in enumerate(sorted(prepaid.credits, key=credit_made_at))
    ]


@dataclass
class Outcome:
    """One account's crossings matched to what its sockets heard."""

    due: Crossings
    alert_s: list[float] = field(default_factory=list)
    cutoff_s: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def heard_against_due(
    what: str, heard: list[tuple[float, str]], due: list[tuple[int, Decimal]], *, charged, sent
) -> tuple[list[float], list[str]]:
    """The i-th message heard (time, balance or value) against the i-th crossing due:
    the latencies from the crossing reading's first send, and the mismatches."""
    if len(heard) != len(due):
        return [], [f"{len(heard)} {what} heard, {len(due)} due"]
    latencies, problems = [], []
    for (at, figure), (number, balance) in zip(heard, due, strict=True):
        latency = at - sent[charged[number - 1]]
        latencies.append(latency)
        if Decimal(figure) != balance or latency < 0:
            problems.append(f"{what} at charge {number}: {figure} after {latency:.3f} s")
    return latencies, problems


def due_of(prepaid: Prepaid, charged: list[str]) -> Crossings:
    return crossings(
        charges=len(charged),
        credited_after=credited_after(prepaid),
        credit=prepaid.credit,
        alert_at=prepaid.credit / 2,
    )


def outcome_of(prepaid: Prepaid, dashboard: Dashboard, charged: list[str], stats: Stats):
    result = Outcome(due_of(prepaid, charged))
    due = result.due
    alerts = sorted(dashboard.alerts.values(), key=lambda seen: seen[0])
    heard_alerts = [(at, alert["value"]) for at, alert in alerts]
    heard_cutoffs = [(at, cutoff["balance"]) for at, cutoff in prepaid.cutoffs]
    for what, heard, crossed, samples in (
        ("alerts", heard_alerts, due.alerts, result.alert_s),
        ("cutoffs", heard_cutoffs, due.cutoffs, result.cutoff_s),
    ):
        latencies, problems = heard_against_due(
            what, heard, crossed, charged=charged, sent=stats.sent
        )
        samples += latencies
        result.problems += problems
    return result


def ledger_problems(prepaid: Prepaid, charged: list[str], stats: Stats) -> list[str]:
    """The account's charges are its acked readings, its total their usage, and its
    balance the credits less that total."""
    mine = f"d{prepaid.index}-"
    acked = {rid for rid in stats.acked if rid.startswith(mine)}
    usage = api(prepaid.base, prepaid.key, "GET", f"/api/v1/accounts/{prepaid.account}/usage/")
    balance = api(prepaid.base, prepaid.key, "GET", f"/api/v1/accounts/{prepaid.account}/balance/")
    credited = prepaid.credit * len(prepaid.credits)
    problems = []
    if set(charged) != acked or len(charged) != len(acked):
        problems.append(f"{len(charged)} charges for {len(acked)} readings acked")
    if Decimal(usage["total"]) != len(acked) * UNIT_PRICE:
        problems.append(f"charged total {usage['total']} for {len(acked)} readings acked")
    if Decimal(balance["balance"]) != credited - Decimal(usage["total"]):
        problems.append(f"balance {balance['balance']} != {credited} - {usage['total']}")
    return [f"account {prepaid.index}: {problem}" for problem in problems]


# --- The run ---------------------------------------------------------------------------


async def stream(args, prepaids: list[Prepaid], stats: Stats) -> tuple[dict, dict]:
    """Open each account's dashboard and device, stream at the paced rate until the
    deadline and every answer is in, then settle; the dashboards and the charged
    readings, by account."""
    loop = asyncio.get_running_loop()
    paced = argparse.Namespace(devices=len(prepaids), rate=args.rate, batch=1)
    paced.in_flight = args.in_flight
    dashboards: dict[str, Dashboard] = {}
    async with contextlib.AsyncExitStack() as sockets:
        devices = []
        for n, prepaid in enumerate(prepaids):
            base = args.url[n % len(args.url)]
            dashboard = await open_dashboard(sockets, base, args.key, prepaid.account)
            dashboards[prepaid.account] = dashboard
            reader = asyncio.create_task(dashboard.read())
            sockets.callback(reader.cancel)
            device = LoadDevice(
                meters_url(base), prepaid.token, prepaid.index, paced, stats, CutoffDevice
            )
            device.device.listener = prepaid.heard
            await device.device.connect()
            sockets.push_async_callback(device.device.close)
            devices.append(device)
        print("bench_credit: streaming", flush=True)
        started = loop.time()
        stats.deadline = started + args.seconds
        # The devices listen on after their last ack: the last cut-offs come after it.
        settled = asyncio.Event()
        runs = [asyncio.create_task(d.run(started, listen_until=settled)) for d in devices]
        for device, running in zip(devices, runs, strict=True):
            answered = asyncio.create_task(device.answered.wait())
            await asyncio.wait({answered, running}, return_when=asyncio.FIRST_COMPLETED)
            if running.done():
                running.result()  # it raised (refused?), or its answers are in
        print("bench_credit: drained", flush=True)
        charged = await settle(args, prepaids, dashboards)
        settled.set()
        await asyncio.gather(*runs)
    return dashboards, charged


async def settle(args, prepaids: list[Prepaid], dashboards: dict[str, Dashboard]) -> dict:
    """Once every reading is answered: wait for the top-ups in flight, then for the last
    alerts and cut-offs due (at most DASHBOARD_GRACE seconds), the sockets still
    reading; the charged readings by account. API calls run in threads: the loop's
    clock times the sockets."""
    loop = asyncio.get_running_loop()
    await asyncio.gather(*(task for prepaid in prepaids for task in prepaid.top_ups))
    charged = {
        prepaid.account: await asyncio.to_thread(
            charged_readings, args.url[0], args.key, prepaid.account
        )
        for prepaid in prepaids
    }
    deadline = loop.time() + DASHBOARD_GRACE
    for prepaid in prepaids:
        due = due_of(prepaid, charged[prepaid.account])
        dashboard = dashboards[prepaid.account]
        while loop.time() < deadline and (
            len(dashboard.alerts) < len(due.alerts) or len(prepaid.cutoffs) < len(due.cutoffs)
        ):
            await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # anything more (a repeat, an alert not due) shows too
    # A late cut-off's top-up comes after the last charge: it changes no crossing.
    await asyncio.gather(*(task for prepaid in prepaids for task in prepaid.top_ups))
    return charged


def tally(prepaids: list[Prepaid], dashboards: dict, charged: dict, stats: Stats) -> dict:
    """Every account's crossings matched and checked: the latencies and the counts."""
    found = {"alert_s": [], "cutoff_s": [], "problems": [], "due_alerts": 0, "due_cutoffs": 0}
    found |= {"unarmed": 0, "repeated": 0, "charge_s": []}
    for prepaid in prepaids:
        mine = charged[prepaid.account]
        dashboard = dashboards[prepaid.account]
        found["charge_s"] += [dashboard.seen[rid] - stats.sent[rid] for rid in dashboard.seen]
        outcome = outcome_of(prepaid, dashboard, mine, stats)
        found["alert_s"] += outcome.alert_s
        found["cutoff_s"] += outcome.cutoff_s
        found["problems"] += [f"account {prepaid.index}: {p}" for p in outcome.problems]
        found["problems"] += ledger_problems(prepaid, mine, stats)
        found["due_alerts"] += len(outcome.due.alerts)
        found["due_cutoffs"] += len(outcome.due.cutoffs)
        found["unarmed"] += outcome.due.unarmed
        found["repeated"] += dashboard.alerts_repeated
    return found


def run(args) -> dict:
    base, key = args.url[0], args.key
    tariff = tariff_create(base, key, UNIT_PRICE)["id"]
    prepaids = [
        prepaid_provision(base, key, index=n, tariff=tariff, credit=args.credit)
        for n in range(args.accounts)
    ]
    stats = Stats()
    cpu_started = time.process_time()
    dashboards, charged = asyncio.run(stream(args, prepaids, stats))
    client_cpu = time.process_time() - cpu_started
    found = tally(prepaids, dashboards, charged, stats)
    problems = found["problems"] + stream_problems(stats)
    return {
        "accounts": args.accounts,
        "rate": args.rate,
        "credit": str(args.credit),
        "seconds": args.seconds,
        **stats_figures(stats, args.seconds),
        "alert_ms": percentiles_ms(found["alert_s"]),
        "cutoff_ms": percentiles_ms(found["cutoff_s"]),
        "dashboard_charge_ms": percentiles_ms(found["charge_s"]),
        "alerts": {
            "due": found["due_alerts"],
            "heard": len(found["alert_s"]),
            "repeated": found["repeated"],
        },
        "cutoffs": {"due": found["due_cutoffs"], "heard": len(found["cutoff_s"])},
        "credits": sum(len(prepaid.credits) for prepaid in prepaids),
        "unarmed": found["unarmed"],
        "restores": sum(prepaid.restores for prepaid in prepaids),
        "client_cpu_s": round(client_cpu, 3),
        "problems": problems,
        "ok": not problems,
    }


def stream_problems(stats: Stats) -> list[str]:
    errors = [*stats.errors.values(), *stats.frame_errors]
    problems = []
    if stats.unanswered:
        problems.append(f"{stats.unanswered} readings never answered")
    if errors:
        problems.append(f"{len(errors)} errors, first {errors[0]}")
    if stats.reconnects:  # a device reconnecting while cut off hears cutoff again
        problems.append(f"devices reconnected {stats.reconnects} times ({stats.close_codes})")
    return problems


def summary(result: dict) -> str:
    def spread(figures: dict) -> str:
        return f"p50 {figures['p50']} ms p99 {figures['p99']} ms max {figures['max']} ms"

    alerts, cutoffs = result["alerts"], result["cutoffs"]
    line = (
        f"{result['accounts']} prepaid accounts at {result['rate']:g} readings/s, credit "
        f"{result['credit']}: {result['readings_per_s']:,.0f} readings/s acked; "
        f"ack {spread(result['ack_ms'])}; dashboard charge {spread(result['dashboard_charge_ms'])}"
        f"\n  crossing to alert {spread(result['alert_ms'])} ({alerts['heard']} of {alerts['due']}"
        f" due); to cutoff {spread(result['cutoff_ms'])} ({cutoffs['heard']} of {cutoffs['due']}"
        f" due); {result['credits']} credits, {result['unarmed']} left the alert unarmed"
    )
    for problem in result["problems"][:20]:
        line += f"\n  PROBLEM: {problem}"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    target_arguments(parser)
    parser.add_argument("--accounts", type=int, default=20, help="one device each")
    parser.add_argument("--rate", type=float, default=1000, help="readings/s of all devices")
    parser.add_argument("--credit", type=Decimal, default=Decimal(100), help="C, each credit")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--in-flight", type=int, default=PACED_IN_FLIGHT)
    args = parser.parse_args()
    args.url = [url.rstrip("/") for url in args.url]
    result = run(args)
    print(summary(result))
    print(json.dumps(result), flush=True)
    if not result["ok"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
