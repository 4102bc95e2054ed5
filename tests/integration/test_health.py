"""/healthz on the running stack: every part named, both rating workers counted."""

import time

import pytest

pytestmark = pytest.mark.integration

EXPECTED = {"status": "ok", "database": "ok", "redis": "ok", "workers": 2}


def test_healthz_reports_database_redis_and_both_workers(stack):
    # Another test may have run a third worker that is still within its 15 s
    # heartbeat; wait it out rather than depend on the order tests run in.
    deadline = time.monotonic() + 25
    while True:
        status, body = stack.healthz()
        if (status, body) == (200, EXPECTED) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert status == 200
    assert body == EXPECTED
