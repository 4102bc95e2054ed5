"""Stalled rating workers cost a web process bounded memory (metering/batching.py).

Both rating workers of a real stack are paused (SIGSTOP) while twenty device
connections flood daphne, wave after wave, with more readings than it may hold
(METERLINE_MAX_WAITING_READINGS, 2,000 here). daphne holds no more than that
(the queue length its /metrics gauge shows), its resident memory stays flat,
and the devices hear `busy` for the rest. Once the workers go on, the devices
deliver every reading and each is acked and charged exactly once.
"""

import asyncio
import contextlib
import json
import os
import signal
from decimal import Decimal
from functools import partial

import psutil
import pytest

from devtools.stack import http_json
from tests.integration.conftest import _running_stack
from tests.integration.stack import (
    StreamStats,
    assert_charged_once,
    batch,
    connect_device,
    reading,
    recv_json,
    stream,
)

pytestmark = pytest.mark.integration

MAX_WAITING = 2000  # readings daphne may hold for the workers, in this stack
DEVICES = 20
FRAMES = 30  # a device's frames in a wave: within its window (METERLINE_MAX_IN_FLIGHT, 32)
FRAME_READINGS = 100
WAVES = 4  # the first fills what daphne may hold; the others find it full
UNIT_PRICE = Decimal("0.01")
# What daphne may grow by while it holds MAX_WAITING readings: about a kilobyte each,
# plus allocator slack. Holding every reading offered would take 60,000 of them.
HELD_BUDGET_MIB = 12
FLAT_MIB = 4  # growth allowed from the end of the first wave to the end of the last


@pytest.fixture(scope="module")
def flood_stack():
    """A stack of the module's own, whose daphne may hold only MAX_WAITING readings."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("METERLINE_MAX_WAITING_READINGS", str(MAX_WAITING))
        with _running_stack("postgres") as stack:
            yield stack


def rss_mib(process: psutil.Process) -> float:
    return process.memory_info().rss / 2**20


def waiting_readings(stack) -> float:
    """The readings daphne holds for the workers, as /metrics shows them."""
    status, text = http_json("GET", f"{stack.http_base}/metrics", token=stack.operator_key)
    assert status == 200, text
    values = [
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("meterline_waiting_readings{")
    ]
    assert values, "no meterline_waiting_readings in /metrics"
    return sum(values)


def device_frames(prefix: str) -> list[str]:
    """A device's frames of a wave: the same reading ids in every wave (resent)."""
    frames = []
    for start in range(0, FRAMES * FRAME_READINGS, FRAME_READINGS):
        ids = range(start, start + FRAME_READINGS)
        frames.append(json.dumps(batch(reading(f"{prefix}-{i}", "1") for i in ids)))
    return frames


async def wave(ws, frames: list[str]) -> int:
    """Send the frames, then a refused one: the socket answers a connection's frames in
    order, so every answer before its error is all there is (the workers answer nothing).
    Returns the readings answered busy."""
    for frame in frames:
        await ws.send(frame)
    await ws.send(json.dumps(reading("end-of-wave", "-1")))
    busy = 0
    while (answer := await recv_json(ws, timeout=60))["type"] != "error":
        assert answer["type"] == "busy", answer
        busy += len(answer["ids"])
    assert answer["id"] == "end-of-wave"
    return busy


async def stalled_flood(stack, sockets, frames) -> tuple[float, list[tuple[int, float, float]]]:
    """Pause every rating worker and flood daphne in waves: its RSS before (MiB), and after
    each wave the readings answered busy, its RSS and the readings it holds."""
    daphne = psutil.Process(stack.process("daphne").popen.pid)
    paused = stack.workers()
    for worker in paused:
        os.kill(worker.popen.pid, signal.SIGSTOP)
    try:
        before, samples = rss_mib(daphne), []
        for _ in range(WAVES):
            busy = await asyncio.gather(*map(wave, sockets, frames))
            samples.append((sum(busy), rss_mib(daphne), waiting_readings(stack)))
    finally:
        for worker in paused:
            os.kill(worker.popen.pid, signal.SIGCONT)
    return before, samples


@pytest.mark.timeout(600)
async def test_stalled_workers_hold_memory_flat_and_every_reading_is_acked_after(flood_stack):
    stack = flood_stack
    p = stack.provision(meters=DEVICES, unit_price=str(UNIT_PRICE))
    prefixes = [f"flood-{n}" for n in range(DEVICES)]
    async with contextlib.AsyncExitStack() as connections:
        sockets = [
            await connections.enter_async_context(connect_device(stack, token))
            for token in p.tokens
        ]
        for prefix, ws in zip(prefixes, sockets, strict=True):
            # Each connection warmed up through the workers (its reading resent in the waves).
            await ws.send(json.dumps(reading(f"{prefix}-0", "1")))
            assert (await recv_json(ws))["type"] == "ack"
        waiting_readings(stack)  # and /metrics
        frames = [device_frames(prefix) for prefix in prefixes]
        before, samples = await stalled_flood(stack, sockets, frames)

    offered = DEVICES * FRAMES * FRAME_READINGS
    figures = f"offered {offered} a wave; RSS before {before:.1f} MiB; (busy, RSS, held): {samples}"
    print(figures)
    for busy, rss, held in samples:
        assert 0 < held <= MAX_WAITING, figures
        assert busy >= offered - MAX_WAITING, figures
        assert rss - before <= HELD_BUDGET_MIB, figures
    assert max(rss for _, rss, _ in samples) - samples[0][1] <= FLAT_MIB, figures

    # The workers are back: each device delivers its readings as the contract asks (those
    # the stalled batches held are rated at last, and their resends acked as duplicates).
    stats = [StreamStats() for _ in prefixes]
    count = FRAMES * FRAME_READINGS
    await asyncio.gather(*map(partial(stream, stack, count=count), p.tokens, prefixes, stats))
    assert_charged_once(stack, p.account, stats, per_device=count, unit_price=UNIT_PRICE)
