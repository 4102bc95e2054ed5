"""Credit control on the real processes (CONTRACT.md section 6).

Two daphne processes: one charge streamed through one cuts off the devices held by
both; a device connecting later hears it at once; a credit restores them. Two clients
racing one idempotency key credit once. A rating worker killed between the commit of
the charge that fires an alert and telling it: the sweeper tells it, same id.
"""

import asyncio
import json
import sys
import threading
import time
from decimal import Decimal

import psycopg
import pytest

from devtools.stack import http_json
from tests.integration.stack import (
    Device,
    connect_dashboard,
    connect_device,
    make_stack,
    reading,
    recv_json,
    recv_until,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def two_web():
    current = make_stack()
    current.web_count = 2
    try:
        current.start()
        yield current
    finally:
        current.stop()


def ws_base_of(stack, n: int) -> str:
    return stack.http_bases[n].replace("http://", "ws://")


def connect_device_to(stack, token: str, n: int):
    from websockets.asyncio.client import connect

    headers = {"Authorization": f"Bearer {token}"}
    return connect(f"{ws_base_of(stack, n)}/ws/meters/", additional_headers=headers)


def prepaid(stack, *, meters: int, credit: str, cutoff_at: str = "0"):
    p = stack.provision(meters=meters, model="per_unit", unit_price="1")
    stack.api_ok(
        "POST",
        f"/api/v1/accounts/{p.account}/credits/",
        {"amount": credit, "idempotency_key": "first"},
        201,
    )
    stack.api_ok("PATCH", f"/api/v1/accounts/{p.account}/", {"cutoff_at": cutoff_at})
    return p


async def test_one_charge_cuts_off_the_devices_on_both_web_processes(two_web):
    stack = two_web
    p = prepaid(stack, meters=3, credit="5")
    async with (
        connect_device_to(stack, p.tokens[0], 0) as sender,
        connect_device_to(stack, p.tokens[1], 0) as here,
        connect_device_to(stack, p.tokens[2], 1) as there,
    ):
        answers = await Device(sender).deliver([reading("r-1", "3"), reading("r-2", "3")])
        assert answers == {"r-1": "ack", "r-2": "ack"}  # charged: the energy was used
        cutoff = {"type": "cutoff", "reason": "balance_exhausted", "balance": "-1.000000"}
        for ws in (here, there):
            assert await recv_json(ws, timeout=10) == cutoff
        async with connect_device_to(stack, p.tokens[1], 1) as later:
            assert await recv_json(later, timeout=10) == cutoff
        stack.api_ok(
            "POST",
            f"/api/v1/accounts/{p.account}/credits/",
            {"amount": "2", "idempotency_key": "second"},
            201,
        )
        for ws in (sender, there):
            assert await recv_until(ws, lambda m: m["type"] == "restore", timeout=10)
    balance = stack.api_ok("GET", f"/api/v1/accounts/{p.account}/balance/")
    assert (balance["balance"], balance["cut_off"]) == ("1.000000", False)


def test_credits_racing_with_one_key_credit_once(two_web):
    stack = two_web
    p = stack.provision(meters=1)
    answers: list[tuple[int, dict]] = []
    start = threading.Barrier(4)

    def post(base: str) -> None:
        start.wait()
        answers.append(
            http_json(
                "POST",
                f"{base}/api/v1/accounts/{p.account}/credits/",
                {"amount": "10", "idempotency_key": "race"},
                token=stack.operator_key,
            )
        )

    threads = [threading.Thread(target=post, args=(base,)) for base in stack.http_bases * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(status for status, _ in answers) == [200, 200, 200, 201]
    assert len({body["id"] for _, body in answers}) == 1
    balance = stack.api_ok("GET", f"/api/v1/accounts/{p.account}/balance/")
    assert balance["credited"] == "10.000000"


async def test_an_alert_committed_by_a_worker_that_died_is_still_told(two_web):
    stack = two_web
    p = stack.provision(meters=1, model="per_unit", unit_price="1")
    alert = stack.api_ok(
        "POST",
        f"/api/v1/accounts/{p.account}/alerts/",
        {"kind": "spend_above", "threshold": "2"},
        201,
    )
    normal = [w.name for w in stack.workers()]
    for name in normal:
        stack.stop_process(name)
    env = stack.app_env() | {"METERLINE_FAULT": "crash-after-commit"}
    worker = [sys.executable, "manage.py", "runworker", "rating"]
    faulty = stack.spawn("worker-faulty", worker, env=env)
    try:
        async with (
            connect_dashboard(stack, p.account, stack.operator_key) as dashboard,
            connect_device(stack, p.tokens[0]) as ws,
        ):
            assert (await recv_json(dashboard))["type"] == "snapshot"
            await ws.send(json.dumps(reading("r-1", "3")))
            deadline = time.monotonic() + 30
            while faulty.alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert not faulty.alive(), "the faulty worker did not rate the crossing reading"
            told = await recv_until(dashboard, lambda m: m["type"] == "alert", timeout=30)
    finally:
        stack.processes.remove(faulty)
        for name in normal:
            stack.start_worker(name)
        stack.wait_healthy(workers=len(normal))
    assert (told["alert"], told["value"]) == (alert["id"], "3.000000")
    # The event the dying worker committed, told by the sweeper under its own id.
    with psycopg.connect(stack.database_url) as db:
        written = db.execute(
            "SELECT public_id FROM billing_event WHERE account_id = %s AND type = %s",
            (p.account, "alert.triggered"),
        ).fetchall()
    assert written == [(told["id"],)]
    [fired] = stack.api_ok("GET", f"/api/v1/accounts/{p.account}/alerts/")
    assert fired["last_fired_at"] is not None
    charges = stack.charges(p.account)
    assert [c["reading_id"] for c in charges] == ["r-1"]  # committed before the crash
    assert Decimal(charges[0]["amount"]) == 3
