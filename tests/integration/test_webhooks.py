"""Webhooks on the real stack: a device's disconnect reaches a receiver as a signed
meter.offline, and deliveries pending while the Celery worker is killed, Redis is down and
PostgreSQL restarts all arrive once they are back, none twice to a receiver that answered
2xx: the schedule lives in the database.

The receivers run in this process on 127.0.0.1 and verify every request with the
standardwebhooks library (tests/webhooks/receiver.py). The stack is this module's own:
it allows private addresses and retries every second.
"""

import asyncio
import json
import threading

import pytest

from devtools.stack import wait_for
from tests.integration.conftest import _running_stack
from tests.integration.stack import connect_device
from tests.webhooks.receiver import Receiver

pytestmark = pytest.mark.integration

ENDPOINTS = "/api/v1/webhook-endpoints/"


@pytest.fixture(scope="module")
def hooks_stack():
    with pytest.MonkeyPatch.context() as env:
        env.setenv("METERLINE_WEBHOOK_ALLOW_PRIVATE", "1")
        env.setenv("METERLINE_WEBHOOK_RETRY_SECONDS", ",".join(["1"] * 60))
        env.setenv("METERLINE_WEBHOOK_SWEEP_SECONDS", "1")
        with _running_stack("postgres") as stack:
            yield stack


@pytest.fixture
def receivers():
    made: list[Receiver] = []
    yield lambda **kwargs: made.append(Receiver(**kwargs).start()) or made[-1]
    for receiver in made:
        receiver.stop()


def subscribe(stack, receiver: Receiver, events: list[str]) -> str:
    body = stack.api_ok("POST", ENDPOINTS, {"url": receiver.url, "events": events}, 201)
    receiver.secrets.append(body["secret"])
    stack.secrets.add(body["secret"])  # no log may ever show it
    return body["id"]


def events_written(stack, account: str, count: int, first: int = 0) -> list[str]:
    """Events committed by a process of the stack's own (manage.py shell), through the
    outbox as the producers write them; their ids, in commit order."""
    code = (
        "from django.db import transaction\n"
        "from billing.outbox import event_record\n"
        f"for n in range({first}, {first + count}):\n"
        "    with transaction.atomic():\n"
        f"        event = event_record(type='meter.offline', account_id={account!r},\n"
        f"                             data={{'account': {account!r}, 'n': n}}, live=False)\n"
        "    print('written', event.public_id)\n"
    )
    lines = stack.manage("shell", "-c", code).stdout.splitlines()
    return [line.split()[1] for line in lines if line.startswith("written ")]


async def test_a_device_that_disconnects_is_a_signed_meter_offline_webhook(hooks_stack, receivers):
    stack = hooks_stack
    hooks = receivers()
    endpoint = subscribe(stack, hooks, ["meter.offline"])
    p = stack.provision(model="per_unit", unit_price="0.1")
    async with connect_device(stack, p.token):
        await asyncio.sleep(0.5)  # connected and recorded

    await asyncio.to_thread(hooks.wait_for, 1, timeout=30)

    [request] = hooks.received
    assert request.verified and request.status == 200
    assert request.payload["type"] == "meter.offline"
    assert request.payload["data"] == {
        "account": p.account,
        "meter": p.meter,
        "reason": "disconnected",
    }
    [attempt] = stack.api_ok("GET", f"{ENDPOINTS}{endpoint}/deliveries/")["results"]
    assert (attempt["event_id"], attempt["attempt"]) == (request.webhook_id, 1)
    assert attempt["status_code"] == 200 and attempt["error"] is None


def test_pending_deliveries_survive_a_killed_worker_redis_and_postgresql(hooks_stack, receivers):
    stack = hooks_stack
    up = threading.Event()  # set: the receivers answer 200; until then 503

    def answer(received) -> int:
        return 200 if up.is_set() else 503

    hooks = [receivers(answers=answer) for _ in range(2)]
    endpoints = [subscribe(stack, receiver, ["meter.offline"]) for receiver in hooks]
    account = stack.create_account("hooks")
    before = events_written(stack, account, 3)
    for receiver in hooks:  # the first event is being retried on both
        wait_for(
            lambda r=receiver: len([x for x in r.received if x.webhook_id == before[0]]) >= 2,
            timeout=30,
            what="the first event retried",
        )

    worker = stack.process("celery")
    worker.popen.kill()  # SIGKILL: nothing of it runs its shutdown
    worker.popen.wait(timeout=10)
    stack.processes.remove(worker)
    stack.stop_process("redis")
    stack.restart_postgres()
    during = events_written(stack, account, 3, first=3)  # committed with no broker to wake
    up.set()
    stack._spawn_redis()
    stack.start_celery_worker()

    expected = before + during
    for receiver in hooks:
        receiver.wait_for(len(expected), timeout=90)
    for receiver, endpoint in zip(hooks, endpoints, strict=True):
        delivered = [r.webhook_id for r in receiver.delivered()]
        assert delivered == expected  # each once, in committed order
        assert all(r.verified for r in receiver.received)
        retried = [r for r in receiver.received if r.webhook_id == before[0]]
        assert [r.status for r in retried][-1] == 200 and len(retried) >= 3
        assert {json.loads(r.body)["data"]["n"] for r in receiver.delivered()} == set(range(6))
        page = stack.api_ok("GET", f"{ENDPOINTS}{endpoint}/deliveries/?limit=1000")["results"]
        codes = {(row["event_id"], row["status_code"]) for row in page}
        assert {(event, 200) for event in expected} <= codes
        assert (before[0], 503) in codes
