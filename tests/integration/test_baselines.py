"""The baselines of `make bench-fleet` (scripts/baselines/) on the real stack: each reading
they acknowledge (a), or accept and save (b), is charged once, at the tariff's price."""

import json
import time
from decimal import Decimal

import pytest
from websockets.asyncio.client import connect

from devtools.stack import http_json, wait_for
from scripts.baselines.processes import baselines_start, baselines_stop
from tests.integration.stack import batch, charges_by_reading, reading, recv_json, ts_ago

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def baselines(stack):
    yield baselines_start(stack, workers=2)
    baselines_stop(stack)


def charged_once(stack, account: str, ids: set[str], price: str) -> None:
    by_reading = charges_by_reading(stack.charges(account))
    assert set(by_reading) == ids
    assert all(len(charges) == 1 for charges in by_reading.values())
    assert {c["amount"] for charges in by_reading.values() for c in charges} == {price}
    assert Decimal(stack.usage(account)["total"]) == len(ids) * Decimal(price)


async def test_naive_channels_acks_each_reading_after_its_save(stack, baselines):
    p = stack.provision(unit_price="0.5")
    url = baselines.naive.replace("http", "ws", 1) + "/ws/meters/"
    async with connect(url, additional_headers={"Authorization": f"Bearer {p.token}"}) as ws:
        for n in range(5):
            await ws.send(json.dumps(reading(f"r-{n}", "2")))
        await ws.send(json.dumps(batch([reading(f"r-{n}", "2") for n in range(5, 10)])))
        await ws.send(json.dumps(reading("r-0", "2")))  # a resend
        answers = [await recv_json(ws) for _ in range(11)]
    acked = [rid for answer in answers for rid in answer["ids"]]
    duplicates = [rid for answer in answers for rid in answer["duplicates"]]
    assert sorted(acked) == sorted(f"r-{n}" for n in range(10))
    assert duplicates == ["r-0"]
    charged_once(stack, p.account, set(acked), "1.000000")


def test_http_celery_saves_each_accepted_reading_once(stack, baselines):
    p = stack.provision(unit_price="0.5")
    readings = [{"id": f"h-{n}", "ts": ts_ago(1), "quantity": "3"} for n in range(10)]
    for item in [*readings, readings[0]]:  # the last one a resend
        status, body = http_json(
            "POST", f"{baselines.http}/baseline/readings/", item, token=p.token
        )
        assert (status, body) == (202, {"id": item["id"]})
    status, _ = http_json("POST", f"{baselines.http}/baseline/readings/", readings[1], token="x")
    assert status == 401
    wait_for(lambda: len(stack.charges(p.account)) >= 10, timeout=30, what="10 charges")
    time.sleep(1)  # room for a wrongly saved resend to show
    charged_once(stack, p.account, {r["id"] for r in readings}, "1.500000")
