"""Both sockets against every kind of wrong credential: the contract's close codes.

Device: anything but the meter's current token is 4401, a disabled meter 4403.
Dashboard: no usable key 4401, a key for another account 4403, no such account 4404.
Each refusal has a control beside it: the right credential connects and stays open.
"""

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from billing.keys import secret_hash
from billing.models import DashboardKey, OperatorKey
from metering.services import meter_token_rotate, meter_update
from tests.consumers.conftest import closed_with, dashboard, device
from tests.factories import (
    make_account,
    make_dashboard_key,
    make_meter,
    make_operator_key,
    make_tariff,
)

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def make_world() -> dict:
    account, other = make_account(), make_account()
    meter, token = make_meter(account, make_tariff())
    rotated, old_token = make_meter(account, make_tariff())
    new_token = meter_token_rotate(meter=rotated)
    disabled, disabled_token = make_meter(account, make_tariff())
    meter_update(meter=disabled, active=False)
    revoked_dashboard, revoked_operator = make_dashboard_key(account), make_operator_key()
    now = timezone.now()
    DashboardKey.objects.filter(key_hash=secret_hash(revoked_dashboard)).update(revoked_at=now)
    OperatorKey.objects.filter(key_hash=secret_hash(revoked_operator)).update(revoked_at=now)
    return {
        "account": account.id,
        "other account": other.id,
        "meter": meter,
        "token": token,
        "rotated": rotated,
        "old token": old_token,
        "new token": new_token,
        "disabled token": disabled_token,
        "operator key": make_operator_key(),
        "dashboard key": make_dashboard_key(account),
        "other dashboard key": make_dashboard_key(other),
        "revoked dashboard key": revoked_dashboard,
        "revoked operator key": revoked_operator,
    }


async def stays_open(communicator) -> bool:
    connected, _ = await communicator.connect()
    try:
        return connected and await communicator.receive_nothing(timeout=0.2)
    finally:
        await communicator.disconnect()


# --- device socket ------------------------------------------------------------

DEVICE_REFUSALS = {
    "no token": 4401,
    "wrong token": 4401,
    "rotated (old) token": 4401,
    "operator key": 4401,
    "dashboard key": 4401,
    "empty bearer": 4401,
    "disabled meter's token": 4403,
}


def device_token(world: dict, credential: str) -> str | None:
    return {
        "no token": None,
        "wrong token": "mtk_not-a-token",
        "rotated (old) token": world["old token"],
        "operator key": world["operator key"],
        "dashboard key": world["dashboard key"],
        "empty bearer": " ",
        "disabled meter's token": world["disabled token"],
    }[credential]


@pytest.mark.parametrize("how", ["header", "query"])
@pytest.mark.parametrize("credential", DEVICE_REFUSALS)
async def test_device_socket_refusals(credential, how):
    world = await make_world()
    token = device_token(world, credential)
    if how == "header":
        communicator = device(token)
    else:
        communicator = device(query=f"?token={token}" if token is not None else "")
    assert await closed_with(communicator) == DEVICE_REFUSALS[credential]


async def test_a_device_token_in_a_basic_header_is_no_token():
    world = await make_world()
    headers = [(b"authorization", f"Basic {world['token']}".encode())]
    communicator = device()
    communicator.scope["headers"] = headers
    assert await closed_with(communicator) == 4401


async def test_device_socket_takes_the_current_tokens():
    world = await make_world()
    assert await stays_open(device(world["token"]))
    assert await stays_open(device(query=f"?token={world['new token']}"))


@pytest.mark.parametrize(
    ("change", "code"),
    [("rotate", 4401), ("disable", 4403)],
)
async def test_an_open_device_connection_is_closed_when_its_token_stops_working(change, code):
    world = await make_world()
    meter = world["meter"]
    communicator = device(world["token"])
    assert (await communicator.connect())[0]
    if change == "rotate":
        await database_sync_to_async(meter_token_rotate)(meter=meter)
    else:
        await database_sync_to_async(meter_update)(meter=meter, active=False)
    assert await communicator.receive_output(timeout=2) == {"type": "websocket.close", "code": code}
    assert await closed_with(device(world["token"])) == code


# --- dashboard socket ---------------------------------------------------------

DASHBOARD_REFUSALS = {
    "no key": ("account", None, 4401),
    "wrong key": ("account", "dbk_not-a-key", 4401),
    "revoked dashboard key": ("account", "revoked dashboard key", 4401),
    "revoked operator key": ("account", "revoked operator key", 4401),
    "device token": ("account", "token", 4401),
    "another account's dashboard key": ("account", "other dashboard key", 4403),
    "unknown account, operator key": ("acc_missing", "operator key", 4404),
    "unknown account, dashboard key": ("acc_missing", "dashboard key", 4404),
}


@pytest.mark.parametrize("how", ["header", "query"])
@pytest.mark.parametrize("credential", DASHBOARD_REFUSALS)
async def test_dashboard_socket_refusals(credential, how):
    world = await make_world()
    where, key, code = DASHBOARD_REFUSALS[credential]
    account_id = world.get(where, where)
    token = world.get(key, key)
    if how == "query" and key == "operator key":
        code = 4401  # no operator key in a URL, whatever else is wrong
    assert await closed_with(dashboard(account_id, token, via=how)) == code


async def test_an_operator_key_in_the_url_is_refused():
    """URLs end up in proxy logs and browser histories: the most powerful key never goes
    there (CONTRACT.md section 4). In the Authorization header it is taken (below)."""
    world = await make_world()
    assert await closed_with(dashboard(world["account"], world["operator key"])) == 4401
    assert await closed_with(dashboard(world["other account"], world["operator key"])) == 4401


@pytest.mark.parametrize(
    ("key", "how"),
    [("dashboard key", "header"), ("dashboard key", "query"), ("operator key", "header")],
)
async def test_dashboard_socket_takes_the_accounts_key_and_operator_keys(key, how):
    world = await make_world()
    watcher = dashboard(world["account"], world[key], via=how)
    connected, _ = await watcher.connect()
    assert connected
    snapshot = await watcher.receive_json_from()
    assert (snapshot["type"], snapshot["account"]) == ("snapshot", world["account"])
    await watcher.disconnect()
