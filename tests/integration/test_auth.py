"""Who may connect: device tokens, disabled meters, rotated tokens, dashboard keys."""

import pytest

from devtools.stack import http_json, wait_for
from tests.integration.stack import (
    Device,
    connect_dashboard,
    connect_device,
    expect_close,
    expect_refused,
    reading,
    recv_json,
    send_json,
    ts_ago,
)

pytestmark = pytest.mark.integration


# --- devices -------------------------------------------------------------------


@pytest.mark.parametrize("via", ["header", "query"])
@pytest.mark.parametrize("token", [None, "", "not-a-device-token"], ids=["none", "empty", "wrong"])
async def test_device_without_a_valid_token_is_refused_4401(stack, via, token):
    await expect_refused(connect_device(stack, token, via=via), 4401)


async def test_operator_key_is_not_a_device_token(stack):
    await expect_refused(connect_device(stack, stack.operator_key), 4401)


async def test_disabled_meter_is_closed_and_refused_4403(stack):
    p = stack.provision(unit_price="1")
    async with connect_device(stack, p.token) as ws:
        await send_json(ws, reading("a-1", "1"))
        assert (await recv_json(ws))["ids"] == ["a-1"]

        disabled = stack.api_ok("PATCH", f"/api/v1/meters/{p.meter}/", {"active": False})
        assert disabled.get("active") is False
        await expect_close(ws, 4403)

    for via in ("header", "query"):
        await expect_refused(connect_device(stack, p.token, via=via), 4403)
    status, _ = http_json(
        "POST",
        f"{stack.http_base}/api/v1/meters/{p.meter}/readings/",
        {"readings": [{"id": "a-2", "ts": ts_ago(0), "quantity": "1"}]},
        token=p.token,
    )
    assert status == 403  # the token is the meter's own: known, but the meter is disabled
    assert [c["reading_id"] for c in stack.charges(p.account)] == ["a-1"]

    # Enabled again, the same token works.
    stack.api_ok("PATCH", f"/api/v1/meters/{p.meter}/", {"active": True})
    async with connect_device(stack, p.token) as ws:
        assert await Device(ws).deliver([reading("a-3", "1")]) == {"a-3": "ack"}


def test_a_token_in_the_query_string_is_logged_redacted(stack):
    # A failed login with the secret in the URL: the access log must show the request,
    # not the token (the stack fixture's teardown looks for every secret in every log).
    p = stack.provision()
    path = f"/api/v1/accounts/{p.account}/"
    status, _ = stack.api("GET", f"{path}?token={p.token}", token=p.token)
    assert status == 401  # a device token is no operator key
    assert p.token in stack.secrets
    access_log = stack.process("daphne").log
    wait_for(
        lambda: f"{path}?token=[redacted]" in access_log.read_text(errors="replace"),
        timeout=10,
        what="the request in daphne's access log",
    )


async def test_rotated_token_closes_old_connections_4401(stack):
    p = stack.provision(unit_price="1")
    async with connect_device(stack, p.token, via="query") as ws:
        await send_json(ws, reading("t-1", "1"))
        assert (await recv_json(ws))["ids"] == ["t-1"]

        rotated = stack.api_ok("POST", f"/api/v1/meters/{p.meter}/rotate-token/", None, 200)
        new_token = rotated["token"]
        assert isinstance(new_token, str) and new_token and new_token != p.token
        await expect_close(ws, 4401)

    await expect_refused(connect_device(stack, p.token), 4401)
    await expect_refused(connect_device(stack, p.token, via="query"), 4401)
    status, _ = http_json(
        "POST",
        f"{stack.http_base}/api/v1/meters/{p.meter}/readings/",
        {"readings": [{"id": "t-2", "ts": ts_ago(0), "quantity": "1"}]},
        token=p.token,
    )
    assert status == 401

    async with connect_device(stack, new_token) as ws:
        assert await Device(ws).deliver([reading("t-3", "1")]) == {"t-3": "ack"}
    assert sorted(c["reading_id"] for c in stack.charges(p.account)) == ["t-1", "t-3"]


async def test_rotating_one_meter_leaves_others_connected(stack):
    p = stack.provision(meters=2, unit_price="1")
    async with connect_device(stack, p.tokens[1]) as other:
        stack.api_ok("POST", f"/api/v1/meters/{p.meters[0]}/rotate-token/", None, 200)
        stack.api_ok("PATCH", f"/api/v1/meters/{p.meters[0]}/", {"active": False})
        assert await Device(other).deliver([reading("o-1", "1")]) == {"o-1": "ack"}


# --- dashboards ----------------------------------------------------------------


def _missing_account_id(real: str) -> str:
    prefix = real.split("_", 1)[0] + "_" if "_" in real else ""
    return f"{prefix}doesnotexist0000"


async def test_dashboard_refusals(stack):
    mine = stack.create_account(name="mine")
    theirs = stack.create_account(name="theirs")
    their_key = stack.dashboard_key(theirs)
    p = stack.provision()

    await expect_refused(connect_dashboard(stack, mine, None), 4401)
    for via in ("header", "query"):
        await expect_refused(connect_dashboard(stack, mine, "", via=via), 4401)
        await expect_refused(connect_dashboard(stack, mine, "not-a-key", via=via), 4401)
        await expect_refused(connect_dashboard(stack, mine, their_key, via=via), 4403)
    # No operator key in a URL (proxy logs, browser histories), even a right one.
    await expect_refused(connect_dashboard(stack, mine, stack.operator_key, via="query"), 4401)
    # A device token is no dashboard credential (the contract does not say which code).
    await expect_refused(connect_dashboard(stack, p.account, p.token), (4401, 4403))
    await expect_refused(
        connect_dashboard(stack, _missing_account_id(mine), stack.operator_key), 4404
    )
