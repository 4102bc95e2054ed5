"""`make demo`'s charge point: `manage.py simulate` charges a session that is billed live
(its running amount grows while it is active) and completed, on the real stack."""

import sys
from decimal import Decimal

import pytest

from devtools.stack import wait_for

pytestmark = pytest.mark.integration


def demo_sessions(stack) -> list[dict]:
    return stack.api_ok("GET", "/api/v1/accounts/acc_demo/charging-sessions/")


def test_the_simulated_charge_point_is_billed_live(stack):
    stack.manage("demo_setup", "--meters", "0")
    simulate = [sys.executable, "manage.py", "simulate", "--meters", "0", "--charge-points", "1"]
    simulate += ["--session-seconds", "10", "--url", stack.http_base]
    simulator = stack.spawn("simulator", simulate)
    try:
        active = wait_for(
            lambda: [s for s in demo_sessions(stack) if s["status"] == "active"],
            timeout=60,
            what="an active demo session",
        )[0]
        running = wait_for(
            lambda: (
                Decimal(_session(stack, active["id"])["amount"]) > 0
                and _session(stack, active["id"])
            ),
            timeout=30,
            what="a running amount",
        )
        assert running["charge_point_id"] == "DEMO-CP-1" and running["id_tag"] == "DEMO0001"
        done = wait_for(
            lambda: (s := _session(stack, active["id"]))["status"] == "completed" and s,
            timeout=60,
            what="the session completed",
        )
        assert Decimal(done["amount"]) >= Decimal(running["amount"]) > 0
        assert (
            Decimal(done["energy_kwh"])
            == (Decimal(done["meter_stop_wh"]) - Decimal(done["meter_start_wh"])) / 1000
        )
    finally:
        simulator.stop()
    assert simulator.popen.returncode is not None


def _session(stack, session_id: str) -> dict:
    return stack.api_ok("GET", f"/api/v1/charging-sessions/{session_id}/")
