"""Nothing lost, nothing doubled: devices stream while workers, Redis, daphne and PostgreSQL fail.

Each test streams thousands of readings from devices that behave as the
contract asks (resend whatever has no ack after a reconnect, a timeout or a
`busy`), injects one fault in the middle, and then checks that every reading
was acked and charged exactly once, to the last decimal.

These tests restart parts of their stack, so they have a stack of their own (`fault_stack`).
"""

import asyncio
import signal
import time
from collections import deque
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from tests.integration.stack import connect_device, iso, recv_json, send_json

pytestmark = pytest.mark.integration

DEVICES = 3
READINGS_PER_DEVICE = 1500
FRAME = 10  # readings a frame
WINDOW = 8  # frames in flight
UNIT_PRICE = Decimal("0.01")
ANSWER_TIMEOUT = 10.0  # resend a reading unanswered this long
STREAM_DEADLINE = 240.0


class StreamStats:
    def __init__(self) -> None:
        self.acked: set[str] = set()
        self.resent = 0
        self.reconnects = 0
        self.busy = 0
        self.errors: list[dict] = []
        self.last_answer = time.monotonic()
        self.last_kind = ""

    def describe(self, total: int) -> str:
        quiet = time.monotonic() - self.last_answer
        return (
            f"{total - len(self.acked)} unacked, resent {self.resent}, reconnects "
            f"{self.reconnects}, busy {self.busy}; last answer ({self.last_kind}) {quiet:.0f} s ago"
        )


async def stream(stack, token: str, prefix: str, stats: StreamStats) -> None:
    """Deliver READINGS_PER_DEVICE readings of quantity 1 through whatever happens."""
    readings = {
        f"{prefix}-{i}": {"id": f"{prefix}-{i}", "ts": iso(datetime.now(UTC)), "quantity": "1"}
        for i in range(READINGS_PER_DEVICE)
    }
    queue: deque[str] = deque(readings)
    deadline = time.monotonic() + STREAM_DEADLINE
    while len(stats.acked) < len(readings):
        assert time.monotonic() < deadline, f"{prefix}: {stats.describe(len(readings))}"
        outstanding: dict[str, float] = {}
        try:
            async with connect_device(stack, token) as ws:
                while len(stats.acked) < len(readings):
                    assert time.monotonic() < deadline, f"{prefix}: {stats.describe(len(readings))}"
                    while queue and len(outstanding) < WINDOW * FRAME:
                        ids = [queue.popleft() for _ in range(min(FRAME, len(queue)))]
                        ids = [i for i in ids if i not in stats.acked]
                        if ids:
                            # Outstanding before the send: if the send fails, they are resent.
                            outstanding.update(dict.fromkeys(ids, time.monotonic()))
                            frame = {"type": "batch", "readings": [readings[i] for i in ids]}
                            await send_json(ws, frame)
                    try:
                        reply = await recv_json(ws, 1.0)
                    except TimeoutError:
                        reply = {}
                    kind = reply.get("type")
                    if kind:
                        stats.last_answer, stats.last_kind = time.monotonic(), kind
                    if kind == "ack":
                        for rid in reply["ids"] + reply["duplicates"]:
                            stats.acked.add(rid)
                            outstanding.pop(rid, None)
                    elif kind == "busy":
                        stats.busy += 1
                        await asyncio.sleep(reply["retry_after_ms"] / 1000)
                        for rid in reply["ids"]:
                            if outstanding.pop(rid, None) is not None:
                                queue.appendleft(rid)
                    elif kind == "error":
                        stats.errors.append(reply)
                    stale = [
                        r
                        for r, sent in outstanding.items()
                        if time.monotonic() - sent > ANSWER_TIMEOUT
                    ]
                    for rid in stale:
                        del outstanding[rid]
                        queue.appendleft(rid)
                        stats.resent += 1
        except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError):
            stats.reconnects += 1
            for rid in outstanding:
                if rid not in stats.acked:
                    queue.appendleft(rid)
                    stats.resent += 1
            await asyncio.sleep(0.3)


async def stream_through(stack, fault) -> list[StreamStats]:
    """Stream from every device, run `fault` (blocking) once streaming is under way."""
    p = stack.provision(meters=DEVICES, model="per_unit", unit_price=str(UNIT_PRICE))
    stats = [StreamStats() for _ in range(DEVICES)]
    started = time.monotonic()
    tasks = [
        asyncio.create_task(stream(stack, token, f"{p.meters[n]}-{started}", stats[n]))
        for n, token in enumerate(p.tokens)
    ]
    while sum(len(s.acked) for s in stats) < DEVICES * READINGS_PER_DEVICE // 5:
        await asyncio.sleep(0.05)
        assert not any(t.done() and t.exception() for t in tasks)
    await asyncio.to_thread(fault)
    await asyncio.gather(*tasks)
    # Exactly once: each reading has one charge, and the money adds up exactly.
    charges = stack.charges(p.account)
    assert len(charges) == DEVICES * READINGS_PER_DEVICE
    assert len({(c["meter"], c["reading_id"]) for c in charges}) == len(charges), "doubled"
    expected = UNIT_PRICE * DEVICES * READINGS_PER_DEVICE
    assert sum(Decimal(c["amount"]) for c in charges) == expected
    assert Decimal(stack.usage(p.account)["total"]) == expected
    for s in stats:
        assert len(s.acked) == READINGS_PER_DEVICE
        assert s.errors == []
    return stats


def report(name: str, stats: list[StreamStats]) -> None:
    print(
        f"\n{name}: {DEVICES * READINGS_PER_DEVICE} readings acked and charged once; "
        f"resent {sum(s.resent for s in stats)}, reconnects {sum(s.reconnects for s in stats)}, "
        f"busy answers {sum(s.busy for s in stats)}"
    )


def replace_worker(stack, signum: int) -> int:
    worker = next(w for w in stack.workers() if w.alive())
    worker.popen.send_signal(signum)
    code = worker.popen.wait(timeout=40)
    stack.processes.remove(worker)  # gone for good: health checks expect the live ones
    stack.start_worker(f"{worker.name}-after-{signal.Signals(signum).name}")
    return code


async def test_sigkill_a_worker(fault_stack):
    stats = await stream_through(fault_stack, lambda: replace_worker(fault_stack, signal.SIGKILL))
    report("SIGKILL worker", stats)


async def test_sigterm_a_worker_exits_0_and_loses_nothing(fault_stack):
    codes = []
    stats = await stream_through(
        fault_stack, lambda: codes.append(replace_worker(fault_stack, signal.SIGTERM))
    )
    assert codes == [0]
    report("SIGTERM worker", stats)


async def test_restart_redis(fault_stack):
    stats = await stream_through(fault_stack, fault_stack.restart_redis)
    report("Redis restart", stats)
    # Heartbeats come back: /healthz sees both workers again.
    fault_stack.wait_healthy(workers=2, timeout=30)


async def test_restart_daphne(fault_stack):
    stats = await stream_through(fault_stack, fault_stack.restart_web)
    report("daphne restart", stats)


async def test_restart_postgresql(fault_stack):
    stats = await stream_through(fault_stack, fault_stack.restart_postgres)
    report("PostgreSQL restart", stats)
    fault_stack.wait_healthy(workers=2, timeout=30)
