"""Periods close into invoices on the live stack: by Celery beat, by the endpoint, and racing."""

import asyncio
import itertools
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from devtools.stack import REPO_ROOT
from tests.integration.stack import Device, batch, connect_device, iso, reading

pytestmark = pytest.mark.integration


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def invoices(stack, account: str) -> list[dict]:
    return stack.api_ok("GET", f"/api/v1/invoices/?account={account}")["results"]


def wait_for_invoice(stack, account: str, period_start: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for invoice in invoices(stack, account):
            if invoice["period_start"] == period_start:
                return invoice
        time.sleep(0.5)
    raise AssertionError(f"no invoice for the period from {period_start} after {timeout} s")


async def test_celery_beat_closes_a_period_at_its_end(stack):
    p = stack.provision(model="per_unit", unit_price="1", fixed_fee="0.50", billing_period="PT3S")
    async with connect_device(stack, p.token) as ws:
        assert await Device(ws).deliver([reading("r", "2.005", ts=iso(datetime.now(UTC)))]) == {
            "r": "ack"
        }
    [charge] = stack.charges(p.account)
    invoice = wait_for_invoice(stack, p.account, charge["period_start"])
    assert invoice["status"] == "finalized"
    assert [(line["kind"], line["quantity"], line["amount"]) for line in invoice["lines"]] == [
        ("usage", "2.005", "2.01"),
        ("fixed_fee", "1", "0.50"),
    ]
    assert (invoice["subtotal"], invoice["total"]) == ("2.51", "2.51")
    # Finalized means frozen: asked again later, the invoice is the same.
    time.sleep(1.5)
    assert stack.api_ok("GET", f"/api/v1/invoices/{invoice['id']}/") == invoice


async def test_close_period_then_a_late_reading_lands_in_the_new_period(stack):
    p = stack.provision(model="per_unit", unit_price="1")
    async with connect_device(stack, p.token) as ws:
        device = Device(ws)
        assert await device.deliver([reading("before", "3")]) == {"before": "ack"}
        before_close = iso(datetime.now(UTC))
        invoice = stack.api_ok("POST", f"/api/v1/accounts/{p.account}/close-period/", None, 201)
        assert invoice["total"] == "3.00"
        assert await device.deliver([reading("late", "4", ts=before_close)]) == {"late": "ack"}
    late = next(c for c in stack.charges(p.account) if c["reading_id"] == "late")
    assert late["late"] is True
    assert late["period_start"] == invoice["period_end"]
    assert stack.api_ok("GET", f"/api/v1/invoices/{invoice['id']}/") == invoice
    assert stack.usage(p.account)["total"] == "4.000000"


async def test_closers_racing_with_rating_put_every_charge_on_exactly_one_invoice(stack):
    """Devices stream while beat, the endpoint and close_periods commands close 2 s periods."""
    p = stack.provision(meters=3, model="per_unit", unit_price="0.1", billing_period="PT2S")
    stop = threading.Event()
    problems: list[str] = []

    def endpoint_closer() -> None:
        while not stop.is_set():
            status, body = stack.api("POST", f"/api/v1/accounts/{p.account}/close-period/")
            if status not in (201, 409):
                problems.append(f"close-period answered {status}: {body}")
            time.sleep(0.2)

    def command_closers() -> None:
        env = stack.app_env()
        while not stop.is_set():
            runs = [
                subprocess.Popen(
                    [sys.executable, "manage.py", "close_periods"],
                    cwd=REPO_ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
                for _ in range(2)
            ]
            for run in runs:
                _, err = run.communicate(timeout=60)
                if run.returncode != 0:
                    problems.append(err.decode()[-2000:])

    threads = [threading.Thread(target=endpoint_closer), threading.Thread(target=command_closers)]
    for thread in threads:
        thread.start()

    sent: dict[str, list[dict]] = {}

    async def stream(index: int, token: str) -> dict[str, str]:
        readings = []
        async with connect_device(stack, token) as ws:
            device = Device(ws)
            outcomes: dict[str, str] = {}
            for frame in range(60):
                chunk = [
                    reading(f"d{index}-{frame}-{i}", "1.5", ts=iso(datetime.now(UTC)))
                    for i in range(5)
                ]
                readings += chunk
                outcomes |= await device.deliver([batch(chunk)], timeout=60)
                await asyncio.sleep(0.1)
        sent[token] = readings
        return outcomes

    try:
        outcomes = await asyncio.gather(*(stream(i, t) for i, t in enumerate(p.tokens)))
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=90)
    assert problems == []
    assert all(set(o.values()) <= {"ack", "duplicate"} for o in outcomes)
    stack.api("POST", f"/api/v1/accounts/{p.account}/close-period/")

    charges = stack.charges(p.account)
    assert (
        len(charges)
        == sum(len(r) for r in sent.values())
        == len({c["reading_id"] for c in charges})
    )
    made = sorted(invoices(stack, p.account), key=lambda i: instant(i["period_start"]))
    assert len(made) > 3, "the race needs several periods closed while devices stream"
    spans = [(i["period_start"], i["period_end"], i["created_at"]) for i in made]
    for earlier, later in itertools.pairwise(made):
        assert instant(earlier["period_end"]) <= instant(later["period_start"]), spans
    by_start = {invoice["period_start"]: invoice for invoice in made}
    assert len(by_start) == len(made)
    invoiced: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for invoice in made:
        for line in invoice["lines"]:
            invoiced[invoice["period_start"], line["meter"]] += Decimal(line["quantity"])
    charged: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for charge in charges:
        assert charge["period_start"] in by_start, f"charge {charge['reading_id']} is on no invoice"
        charged[charge["period_start"], charge["meter"]] += Decimal(charge["quantity"])
    assert charged == invoiced
