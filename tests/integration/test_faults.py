"""Nothing lost, nothing doubled: devices stream while workers, Redis, daphne and PostgreSQL fail.

Each test streams thousands of readings from devices that behave as the
contract asks (resend whatever has no ack after a reconnect, a timeout or a
`busy`), injects one fault in the middle, and then checks that every reading
was acked and charged exactly once, to the last decimal.

These tests restart parts of their stack, so they have a stack of their own (`fault_stack`).
"""

import asyncio
import signal
import sys
import time
from decimal import Decimal

import pytest

from devtools.stack import wait_for
from tests.integration.stack import StreamStats, assert_charged_once, stream

pytestmark = pytest.mark.integration

DEVICES = 3
READINGS_PER_DEVICE = 1500
FRAME = 10  # readings a frame
WINDOW = 8  # frames in flight
UNIT_PRICE = Decimal("0.01")


async def stream_through(stack, fault) -> list[StreamStats]:
    """Stream from every device, run `fault` (blocking) once streaming is under way."""
    p = stack.provision(meters=DEVICES, model="per_unit", unit_price=str(UNIT_PRICE))
    stats = [StreamStats() for _ in range(DEVICES)]
    started = time.monotonic()
    tasks = [
        asyncio.create_task(
            stream(stack, token, f"{p.meters[n]}-{started}", stats[n], count=READINGS_PER_DEVICE)
        )
        for n, token in enumerate(p.tokens)
    ]
    while sum(len(s.acked) for s in stats) < DEVICES * READINGS_PER_DEVICE // 5:
        await asyncio.sleep(0.05)
        assert not any(t.done() and t.exception() for t in tasks)
    await asyncio.to_thread(fault)
    await asyncio.gather(*tasks)
    assert_charged_once(
        stack, p.account, stats, per_device=READINGS_PER_DEVICE, unit_price=UNIT_PRICE
    )
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


# A process that locks an account, then goes silent: its host cut off (no RST reaches
# PostgreSQL), or frozen. DB_IDLE_IN_TRANSACTION_SECONDS is read by each process.
LOCK_AND_GO_SILENT = """
import sys, time
import django
django.setup()
from django.db import transaction
from billing.models import Account
with transaction.atomic():
    Account.objects.select_for_update().get(pk=sys.argv[1])
    print("locked", flush=True)
    time.sleep(3600)
"""


def lock_and_go_silent(stack, account: str) -> None:
    env = stack.app_env() | {"DB_IDLE_IN_TRANSACTION_SECONDS": "2"}
    silent = stack.spawn("silent", [sys.executable, "-c", LOCK_AND_GO_SILENT, account], env)
    wait_for(lambda: b"locked" in silent.log.read_bytes(), timeout=30, what="the account locked")
    silent.popen.send_signal(signal.SIGSTOP)  # not even a FIN, as if its host were gone


@pytest.mark.timeout(120)
async def test_a_process_gone_silent_in_a_transaction_does_not_hold_its_account(fault_stack):
    # Without a limit on idle transactions PostgreSQL keeps the account locked as long
    # as the silent connection lasts (hours): the rating of its readings waits as long.
    p = fault_stack.provision(meters=DEVICES, model="per_unit", unit_price=str(UNIT_PRICE))
    lock_and_go_silent(fault_stack, p.account)
    stats = [StreamStats() for _ in range(DEVICES)]
    try:
        await asyncio.gather(
            *(
                stream(
                    fault_stack, token, f"{p.meters[n]}-silent", stats[n], count=READINGS_PER_DEVICE
                )
                for n, token in enumerate(p.tokens)
            )
        )
    finally:
        fault_stack.stop_process("silent")
    assert_charged_once(
        fault_stack, p.account, stats, per_device=READINGS_PER_DEVICE, unit_price=UNIT_PRICE
    )
    report("account locked by a silent process", stats)
