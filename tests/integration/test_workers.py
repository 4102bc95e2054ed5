"""Rating workers: an idle worker stays up, and concurrent workers keep totals exact."""

import asyncio
import os
import random
import signal
import time
from decimal import Decimal

import pytest

from devtools.stack import tail
from tests.integration.stack import (
    Device,
    batch,
    charges_by_reading,
    connect_device,
    money,
    reading,
)

pytestmark = pytest.mark.integration

IDLE_SECONDS = 35
# channels_redis blocks in BZPOPMIN for at most this long; a worker paused
# inside one can still be handed a message until it times out.
BLOCKING_POP_SECONDS = 5


@pytest.mark.timeout(180)
async def test_idle_worker_stays_alive_and_rates(stack):
    extra = stack.start_worker("worker-idle")
    try:
        stack.wait_healthy(workers=3)
        p = stack.provision(unit_price="1")
        await asyncio.sleep(IDLE_SECONDS)
        assert extra.alive(), f"idle worker exited:\n{tail(extra.log)}"
        for worker in stack.workers():
            if worker.name in ("worker-1", "worker-2"):
                assert worker.alive(), f"{worker.name} exited while idle:\n{tail(worker.log)}"

        # Pause the session's workers so that only the idle one can answer.
        paused = [w for w in stack.workers() if w.name in ("worker-1", "worker-2")]
        for worker in paused:
            os.kill(worker.popen.pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(BLOCKING_POP_SECONDS + 1.5)
            async with connect_device(stack, p.token) as ws:
                device = Device(ws)
                outcome = await device.deliver(
                    [reading("idle-1", "1"), batch(reading(f"idle-b{i}", "1") for i in range(5))],
                    timeout=20,
                )
        finally:
            for worker in paused:
                os.kill(worker.popen.pid, signal.SIGCONT)
        assert outcome == {rid: "ack" for rid in ["idle-1", *(f"idle-b{i}" for i in range(5))]}
        assert stack.usage(p.account)["total"] == "6.000000"
        assert extra.alive()
    finally:
        # Its heartbeat may outlive it by the 15 s TTL; test_health allows for that.
        extra.stop()


GRADUATED = {
    "model": "graduated",
    "tiers": [{"up_to": "100", "unit_price": "0.30"}, {"up_to": None, "unit_price": "0.25"}],
}


def graduated_price(usage: Decimal) -> Decimal:
    if usage <= 100:
        return usage * Decimal("0.30")
    return Decimal("30") + (usage - 100) * Decimal("0.25")


async def test_concurrent_devices_on_two_workers_give_exact_totals(any_stack):
    stack = any_stack
    devices, per_device = 4, 200
    p = stack.provision(meters=devices, **GRADUATED)
    rng = random.Random(20261123)
    plans: list[list[dict]] = []
    for d in range(devices):
        readings = [
            reading(f"c{d}-{i:03d}", str(Decimal(rng.randint(1, 4000)) / 1000))
            for i in range(per_device)
        ]
        plans.append(readings)

    def frames_of(readings: list[dict]) -> list[dict]:
        frames, i = [], 0
        while i < len(readings):
            size = rng.choice([1, 1, 1, 2, 5])
            chunk = readings[i : i + size]
            frames.append(chunk[0] if size == 1 else batch(chunk))
            i += size
        return frames

    async def run(token: str, frames: list[dict]) -> dict[str, str]:
        async with connect_device(stack, token) as ws:
            return await Device(ws).deliver(frames, timeout=120)

    # Two meters send every reading twice, the copies in reverse order and all
    # frames in flight at once: both workers see copies of one id together.
    jobs = [
        run(p.tokens[d], frames_of(plans[d]) + (frames_of(plans[d][::-1]) if d < 2 else []))
        for d in range(devices)
    ]
    started = time.monotonic()
    outcomes = await asyncio.wait_for(asyncio.gather(*jobs), timeout=150)
    elapsed = time.monotonic() - started

    for d in range(devices):
        ids = {r["id"] for r in plans[d]}
        assert set(outcomes[d]) == ids
        assert set(outcomes[d].values()) <= {"ack", "duplicate"}, outcomes[d]

    grand_total = Decimal(0)
    for d, meter in enumerate(p.meters):
        expected_usage = sum(Decimal(r["quantity"]) for r in plans[d])
        expected_amount = graduated_price(expected_usage)
        charges = stack.charges(p.account, meter)
        per_reading = charges_by_reading(charges)
        assert set(per_reading) == {r["id"] for r in plans[d]}
        doubled = [rid for rid, c in per_reading.items() if len(c) != 1]
        assert doubled == [], f"charged more than once: {doubled}"
        assert sum(Decimal(c["quantity"]) for c in charges) == expected_usage
        assert money(sum(Decimal(c["amount"]) for c in charges)) == money(expected_amount)
        usage, amount = stack.meter_usage(p.account, meter)
        assert usage == expected_usage
        assert money(amount) == money(expected_amount)
        grand_total += expected_amount
    assert stack.usage(p.account)["total"] == money(grand_total)
    print(f"rated {devices * per_device} readings (+400 resent) in {elapsed:.1f}s")


async def test_frames_of_one_meter_in_flight_together_give_exact_totals(any_stack):
    stack = any_stack
    # Many frames of one meter at once: both workers race for its running total
    # (a second connection would take over the first, so the race is in flight).
    p = stack.provision(**GRADUATED)
    connections, per_connection = 4, 60
    frames = [
        reading(f"s{c}-{i}", "0.625") for i in range(per_connection) for c in range(connections)
    ]
    async with connect_device(stack, p.token) as ws:
        outcome = await asyncio.wait_for(Device(ws).deliver(frames, timeout=120), timeout=150)
    # "duplicate" only where a reply was lost and the device resent (see Device.deliver).
    assert set(outcome.values()) <= {"ack", "duplicate"} and len(outcome) == len(frames)
    usage = Decimal("0.625") * connections * per_connection  # 150: crosses the tier
    charges = stack.charges(p.account, p.meter)
    assert len(charges) == connections * per_connection
    assert len({c["reading_id"] for c in charges}) == len(charges)
    assert money(sum(Decimal(c["amount"]) for c in charges)) == money(graduated_price(usage))
    assert stack.usage(p.account)["total"] == money(graduated_price(usage))
