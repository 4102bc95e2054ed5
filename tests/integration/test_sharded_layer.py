"""The channel layer sharded over two Redis servers (REDIS_URL names both).

Devices stream into one daphne process and dashboards watch from another,
so every answer and every dashboard event crosses the layer, landing on
whichever shard channels-redis hashes its channel or group to. One shard is
restarted mid-stream: every reading is still acked and charged once, and
every dashboard ends up having seen every charge while it was connected
(as an event, or counted in a snapshot it was sent), in order.
"""

import asyncio
import contextlib
import json
import time
from decimal import Decimal

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from tests.integration.stack import StreamStats, assert_charged_once, make_stack, stream

pytestmark = pytest.mark.integration

DEVICES = 3
READINGS_PER_DEVICE = 1500
DASHBOARDS = 2
UNIT_PRICE = Decimal("0.01")


@pytest.fixture(scope="module")
def sharded_stack():
    current = make_stack()
    current.redis_shards = 2
    current.web_count = 2
    try:
        current.start()
        yield current
    finally:
        current.stop()


class Watcher:
    """A dashboard that reconnects whenever it is dropped, and checks what it is shown.

    Per connection: a snapshot at sequence number `seq`, then charge events
    numbered seq+1, seq+2, ... with no gap, or a fresh snapshot that takes
    over the count. `total` is what the page would show.
    """

    def __init__(self) -> None:
        self.total = Decimal(0)
        self.next_seq = 0
        self.events = 0
        self.snapshots = 0
        self.reconnects = 0
        self.problems: list[str] = []

    def shown(self, message: dict) -> None:
        kind = message["type"]
        if kind == "snapshot":
            self.snapshots += 1
            self.next_seq = message["seq"] + 1
            self.total = Decimal(message["total"])
        elif kind == "charge":
            self.events += 1
            if message["seq"] != self.next_seq:
                self.problems.append(f"expected event {self.next_seq}, got {message['seq']}")
            self.next_seq = message["seq"] + 1
            self.total = Decimal(message["period_total"])

    async def watch(self, url: str, key: str, stop: asyncio.Event) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        while not stop.is_set():
            try:
                async with connect(url, additional_headers=headers, open_timeout=10) as ws:
                    while not stop.is_set():
                        with contextlib.suppress(TimeoutError):
                            self.shown(json.loads(await asyncio.wait_for(ws.recv(), 0.5)))
            except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError):
                self.reconnects += 1
                await asyncio.sleep(0.3)


async def test_a_shard_restart_loses_and_doubles_nothing(sharded_stack):
    stack = sharded_stack
    p = stack.provision(meters=DEVICES, model="per_unit", unit_price=str(UNIT_PRICE))
    dashboard_base = stack.http_bases[1].replace("http://", "ws://")
    stop_watching = asyncio.Event()
    watchers = [Watcher() for _ in range(DASHBOARDS)]
    watching = [
        asyncio.create_task(
            w.watch(f"{dashboard_base}/ws/accounts/{p.account}/", stack.operator_key, stop_watching)
        )
        for w in watchers
    ]
    stats = [StreamStats() for _ in range(DEVICES)]
    started = time.monotonic()
    streams = [
        asyncio.create_task(
            stream(stack, token, f"{meter}-{started}", s, count=READINGS_PER_DEVICE)
        )
        for meter, token, s in zip(p.meters, p.tokens, stats, strict=True)
    ]
    while sum(len(s.acked) for s in stats) < DEVICES * READINGS_PER_DEVICE // 4:
        await asyncio.sleep(0.05)
        assert not any(t.done() and t.exception() for t in streams)
    # The second shard: the first also carries heartbeats and Celery.
    await asyncio.to_thread(stack.restart_redis, 1.0, 1)
    await asyncio.gather(*streams)

    charges = assert_charged_once(
        stack, p.account, stats, per_device=READINGS_PER_DEVICE, unit_price=UNIT_PRICE
    )
    expected = UNIT_PRICE * len(charges)

    # Every dashboard converges on the total, having skipped no event on the way.
    deadline = time.monotonic() + 15
    while any(w.total != expected for w in watchers) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    stop_watching.set()
    await asyncio.gather(*watching)
    for w in watchers:
        assert w.problems == [], w.problems
        assert w.total == expected, f"dashboard shows {w.total}, charged {expected}"
        assert w.events > 0
    print(
        f"\nsharded layer, shard restarted: {len(charges)} readings acked and charged once; "
        f"device resends {sum(s.resent for s in stats)}, reconnects "
        f"{sum(s.reconnects for s in stats)}; dashboards saw "
        f"{[w.events for w in watchers]} events, {[w.snapshots for w in watchers]} snapshots, "
        f"{[w.reconnects for w in watchers]} reconnects"
    )
