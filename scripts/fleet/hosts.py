"""Fleet scenario "hosts" (issue 18): Meterline on three hosts made of network namespaces
(scripts/netns_hosts.py), one app host cut off mid-stream.

    .venv/bin/python scripts/netns_hosts.py run --seconds 30     # as root
    run(None, seconds=30) -> dict                                # scripts/bench_fleet.py

PostgreSQL and Redis on one host, the production tree (scripts/serve) on each of two
others; devices and dashboards in the root namespace. Half the devices connect to app1
first and half to app2, each with the other as its failover (clients/device.py, pings
every second, given up on after two); each account has a dashboard on either host.
Halfway through, app1 is cut off (its veth down): its devices notice their silent
connection and reconnect to app2, resending what went unanswered.

Figures: readings acked, the cut's recovery (from the cut until every device of app1
has an ack on app2 for a reading it sent on reconnecting), and the dashboards' view:
readings seen in charge events on app2's dashboards, and whether every dashboard's
period total came to the database's. The check: none lost, none charged twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.fleet.provision import fleet_provision  # noqa: E402
from scripts.fleet.sockets import fleet_check, merged_tally  # noqa: E402
from scripts.fleet.swarm import Swarm, recovery  # noqa: E402
from scripts.netns_hosts import APP1, APP2, Hosts, netns_unavailable  # noqa: E402

DEVICES = 200
ACCOUNTS = 4
INTERVAL = 1.0  # seconds between a device's readings
# Silence noticed within 3 s, a lost connection closed within 1, a dead host given up on
# within 3: the device's part in a failover.
DEVICE_OPTIONS = {"ping_interval": 1, "ping_timeout": 2, "close_timeout": 1, "open_timeout": 3}
CONVERGE_SECONDS = 20.0  # for the dashboards to come to the database's totals
RECOVERY_PATIENCE = 60.0  # seconds the cut host's devices are given (goal: 30): then not_recovered
GOALS = {"cut.all_acked_s": ("<=", 30)}


@dataclass
class Watch:
    """One account's dashboard socket: on `urls[0]` first, failing over to the next."""

    account: str
    key: str
    urls: list[str]
    seen: set[tuple[str, str]] = field(default_factory=set)  # (meter, reading id) charged
    repeated: int = 0
    total: Decimal | None = None  # the period total it shows
    connections: int = 0
    at: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            url = f"{self.urls[self.at]}?token={self.key}"
            try:
                async with connect(url, **DEVICE_OPTIONS) as ws:
                    self.connections += 1
                    async for raw in ws:
                        self.shown(json.loads(raw))
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError):
                pass
            self.at = (self.at + 1) % len(self.urls)
            await asyncio.sleep(0.5)

    def shown(self, message: dict) -> None:
        if message.get("type") == "snapshot":
            self.total = Decimal(message["total"])
        elif message.get("type") == "charge":
            self.total = Decimal(message["period_total"])
            for rid in message["reading_ids"]:  # ids are a meter's: two meters may share one
                if (message["meter"], rid) in self.seen:
                    self.repeated += 1
                self.seen.add((message["meter"], rid))


class Watches(threading.Thread):
    """The dashboards, on an event loop of their own beside the scenario's blocking calls."""

    def __init__(self, watches: list[Watch]) -> None:
        super().__init__(daemon=True)
        self.watches = watches
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()

    def run(self) -> None:
        async def watch_all() -> None:
            tasks = [asyncio.create_task(watch.run(self.stop)) for watch in self.watches]
            await self.stop.wait()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.loop.run_until_complete(watch_all())

    def __enter__(self) -> Watches:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.join(timeout=10)


def dashboards_url(host, account: str) -> str:
    return f"ws://{host.address}:8000/ws/accounts/{account}/"


def watches_make(hosts: Hosts, accounts: list[str]) -> list[Watch]:
    """A dashboard key per account, and a dashboard on each app host with it."""
    watches = []
    for account in accounts:
        key = hosts.api("POST", f"/api/v1/accounts/{account}/dashboard-keys/")["key"]
        for home, other in ((APP1, APP2), (APP2, APP1)):
            urls = [dashboards_url(home, account), dashboards_url(other, account)]
            watches.append(Watch(account, key, urls))
    return watches


def dashboards_view(hosts: Hosts, watches: list[Watch], tally: dict) -> dict:
    """What the dashboards showed: readings acked that app2's saw as charge events, and
    whether each one's period total came to the database's within CONVERGE_SECONDS."""
    totals = {}
    for account in {watch.account for watch in watches}:
        totals[account] = Decimal(hosts.api("GET", f"/api/v1/accounts/{account}/usage/")["total"])
    deadline = time.monotonic() + CONVERGE_SECONDS
    while time.monotonic() < deadline:
        if all(watch.total == totals[watch.account] for watch in watches):
            break
        time.sleep(0.5)
    acked = sum(tally["acked"].values())
    on_app2 = [watch for watch in watches if watch.urls[0].startswith(f"ws://{APP2.address}:")]
    seen = sum(len(watch.seen) for watch in on_app2)
    return {
        "app2_seen_share": round(seen / acked, 4) if acked else None,
        "all_totals_exact": all(watch.total == totals[watch.account] for watch in watches),
        "repeated": sum(watch.repeated for watch in watches),
    }


def streamed(hosts: Hosts, swarm: Swarm, seconds: float) -> dict:
    """Stream, cut app1 off halfway, stream on: the failover's figures."""
    swarm.command("stream", phase="before")
    time.sleep(seconds / 2)
    swarm.command("arm", phase="after")
    cut_at = time.monotonic()
    hosts.cut(APP1)
    answers = swarm.command("recovered", timeout=RECOVERY_PATIENCE, home=APP1.meters_url)
    rest = seconds / 2 - (time.monotonic() - cut_at)
    if rest > 0:
        time.sleep(rest)
    return recovery(answers)


def run(stack=None, *, devices=DEVICES, accounts=ACCOUNTS, seconds=30.0, tmp=None) -> dict:
    """The scenario on hosts of its own (`stack`, if given, is not used: the hosts are
    made here, and removed after)."""
    reason = netns_unavailable()
    if reason:
        return {"skipped": reason}
    tmp = Path(tmp or tempfile.mkdtemp(prefix="meterline-netns-hosts-"))
    with Hosts(tmp) as hosts:
        fleet = fleet_provision(
            api=hosts.api, env=hosts.env(), accounts=accounts, meters=math.ceil(devices / accounts)
        )
        homes = [(APP1, APP2), (APP2, APP1)]
        plan = [
            {"meter": m.meter, "token": m.token, "urls": [h.meters_url for h in homes[n % 2]]}
            for n, m in enumerate(fleet.meters)
        ]
        watches = watches_make(hosts, fleet.accounts)
        with (
            Watches(watches),
            Swarm(
                plan,
                processes=2,
                log=tmp / "logs" / "swarm.log",
                interval=INTERVAL,
                options=DEVICE_OPTIONS,
                backoff={"first": 0.5, "cap": 5.0},
            ) as swarm,
        ):
            swarm.command("connect", timeout=120)
            cut = streamed(hosts, swarm, seconds)
            tally = merged_tally(swarm.command("drain", timeout=60))
            view = dashboards_view(hosts, watches, tally)
        check = fleet_check(_Usage(hosts), fleet, tally)
    steady = tally["latencies_ms"].get("before", [])
    return {
        "devices": len(fleet.meters),
        "readings_per_s_before_cut": round(len(steady) / (seconds / 2), 1),
        "cut": cut,
        "dashboards": view,
        "check": check,
        "ok": not (check["unanswered"] or check["errors"] or check["lost"] or check["doubled"])
        and view["all_totals_exact"],
    }


@dataclass
class _Usage:
    """What fleet_check asks of a stack, from the hosts' API."""

    hosts: Hosts

    def usage(self, account: str) -> dict:
        return self.hosts.api("GET", f"/api/v1/accounts/{account}/usage/")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        print(json.dumps(run(None), indent=2, default=str))
