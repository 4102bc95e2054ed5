"""Open dashboards close when the credential they came with stops working: a dashboard or
operator key revoked (4401), a signed-in session signed out or its user deactivated or given
a new password (4401), a membership removed (4403, what a reconnect would get). Each has a
control beside it: a dashboard on another credential stays open.

Session dashboards come through AuthMiddlewareStack with a real session cookie, as the
browser's do (tests/integration/test_revocation.py: across web processes).
"""

import pytest
from asgiref.sync import sync_to_async
from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from billing.account_services import dashboard_key_create, dashboard_key_revoke
from billing.keys import secret_hash
from billing.models import AccountMember, OperatorKey
from routing.websocket import websocket_urlpatterns
from tests.consumers.conftest import closed_with, dashboard
from tests.factories import make_account, make_operator_key

pytestmark = pytest.mark.django_db(transaction=True)

browser_app = AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
OURS = b"http://localhost:8000"


async def opened(communicator: WebsocketCommunicator) -> WebsocketCommunicator:
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from())["type"] == "snapshot"
    return communicator


async def closed(communicator: WebsocketCommunicator) -> int:
    """The close code the server sends next (nothing else may come first)."""
    output = await communicator.receive_output(timeout=1)
    assert output["type"] == "websocket.close", output
    return output["code"]


async def still_open(communicator: WebsocketCommunicator) -> bool:
    return await communicator.receive_nothing(timeout=0.3)


# --- keys ------------------------------------------------------------------------------


async def test_a_revoked_dashboard_key_closes_its_dashboards():
    account = await database_sync_to_async(make_account)()
    (record, key), (_, other_key) = await database_sync_to_async(
        lambda: (dashboard_key_create(account=account), dashboard_key_create(account=account))
    )()
    first, second = (
        await opened(dashboard(account.id, key)),
        await opened(dashboard(account.id, key)),
    )
    other = await opened(dashboard(account.id, other_key, via="header"))
    await database_sync_to_async(dashboard_key_revoke)(key=record, at=timezone.now())
    assert (await closed(first), await closed(second)) == (4401, 4401)
    assert await still_open(other)
    assert await closed_with(dashboard(account.id, key)) == 4401
    await other.disconnect()


async def test_a_revoked_operator_key_closes_its_dashboards_admin_or_command():
    account = await database_sync_to_async(make_account)()
    keys = [await database_sync_to_async(make_operator_key)() for _ in range(3)]
    watchers = [await opened(dashboard(account.id, key, via="header")) for key in keys]

    @database_sync_to_async
    def revoke(key: str, how: str) -> None:
        operator_key = OperatorKey.objects.get(key_hash=secret_hash(key))
        if how == "command":
            call_command("revoke_api_key", str(operator_key.pk))
            return
        admin = get_user_model().objects.create_superuser("root", password="pw-123456")
        client = Client()
        client.force_login(admin)
        changelist = "/admin/billing/operatorkey/"
        body = {"action": "revoke", "_selected_action": [operator_key.pk]}
        assert client.post(changelist, body).status_code == 302

    await revoke(keys[0], "command")
    assert await closed(watchers[0]) == 4401
    await revoke(keys[1], "admin")
    assert await closed(watchers[1]) == 4401
    assert await still_open(watchers[2])
    assert await closed_with(dashboard(account.id, keys[0], via="header")) == 4401
    await watchers[2].disconnect()


async def test_a_dashboard_that_lost_its_groups_still_hears_a_revocation(monkeypatch):
    """A restarted Redis shard forgets groups: the refresh joins the key's group again."""
    monkeypatch.setattr("metering.consumers.dashboards.GROUP_REFRESH_SECONDS", 0.2)
    account = await database_sync_to_async(make_account)()
    record, key = await database_sync_to_async(dashboard_key_create)(account=account)
    watcher = await opened(dashboard(account.id, key))
    get_channel_layer().groups.clear()
    await watcher.receive_nothing(timeout=0.5)  # a refresh or two
    await database_sync_to_async(dashboard_key_revoke)(key=record, at=timezone.now())
    assert await closed(watcher) == 4401


# --- signed-in users ---------------------------------------------------------------------


@database_sync_to_async
def member(username: str, *accounts):
    user = get_user_model().objects.create_user(username=username, password="pw-123456")
    for account in accounts:
        AccountMember.objects.create(user=user, account=account)
    return user


@database_sync_to_async
def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def browser(client: Client, account_id: str) -> WebsocketCommunicator:
    """A dashboard opened by the signed-in page: the session cookie and our Origin."""
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    headers = [(b"cookie", cookie), (b"origin", OURS)]
    return WebsocketCommunicator(browser_app, f"/ws/accounts/{account_id}/", headers=headers)


async def test_signing_out_closes_that_sessions_dashboards_only():
    account = await database_sync_to_async(make_account)()
    alice = await member("alice", account)
    laptop, phone = await signed_in(alice), await signed_in(alice)
    on_laptop = await opened(browser(laptop, account.id))
    on_phone = await opened(browser(phone, account.id))
    response = await sync_to_async(laptop.post)("/logout/")
    assert response.status_code == 302
    assert await closed(on_laptop) == 4401
    assert await still_open(on_phone)
    assert await closed_with(browser(laptop, account.id)) == 4401
    await on_phone.disconnect()


async def test_a_removed_membership_closes_that_accounts_dashboards():
    mine, also_mine = await database_sync_to_async(lambda: (make_account(), make_account()))()
    alice = await member("alice", mine, also_mine)
    client = await signed_in(alice)
    here, there = (
        await opened(browser(client, mine.id)),
        await opened(browser(client, also_mine.id)),
    )
    await database_sync_to_async(AccountMember.objects.filter(account=mine).delete)()
    # Still signed in, no longer allowed on this account: as a reconnect would hear.
    assert await closed(here) == 4403
    assert await still_open(there)
    assert await closed_with(browser(client, mine.id)) == 4403
    await there.disconnect()


@pytest.mark.parametrize("change", ["deactivated", "new password", "permission taken away"])
async def test_a_changed_user_is_looked_at_again(change):
    account, theirs = await database_sync_to_async(lambda: (make_account(), make_account()))()
    alice, bob = await member("alice", account), await member("bob", account)

    @database_sync_to_async
    def grant_the_view_permission() -> None:
        permission = Permission.objects.get(codename="view_account")
        alice.user_permissions.add(permission)

    if change == "permission taken away":
        await grant_the_view_permission()
    where = theirs.id if change == "permission taken away" else account.id
    watcher = await opened(browser(await signed_in(alice), where))
    control = await opened(browser(await signed_in(bob), account.id))

    @database_sync_to_async
    def make_the_change() -> None:
        if change == "deactivated":
            alice.is_active = False
            alice.save()
        elif change == "new password":
            alice.set_password("a-new-pw-98765")
            alice.save()
        else:
            alice.user_permissions.clear()

    await make_the_change()
    expected = 4403 if change == "permission taken away" else 4401
    assert await closed(watcher) == expected
    assert await still_open(control)
    await control.disconnect()


async def test_signing_in_again_closes_nothing():
    """A sign-in saves the user's last_login: not a change the dashboards look at."""
    account = await database_sync_to_async(make_account)()
    alice = await member("alice", account)
    watcher = await opened(browser(await signed_in(alice), account.id))
    response = await sync_to_async(Client().post)(
        "/login/", {"username": "alice", "password": "pw-123456"}
    )
    assert response.status_code == 302
    assert await still_open(watcher)
    await watcher.disconnect()
