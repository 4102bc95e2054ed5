"""Dashboards opened from the signed-in pages: session users, and the Origin they come from."""

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser

from billing.models import AccountMember
from tests.consumers.conftest import closed_with, dashboard
from tests.factories import make_account, make_dashboard_key

pytestmark = pytest.mark.django_db(transaction=True)

OURS = "http://localhost:8000"


@database_sync_to_async
def member_of_one_account(**user_fields):
    mine, theirs = make_account(), make_account()
    user = get_user_model().objects.create_user(username="alice", **user_fields)
    AccountMember.objects.create(user=user, account=mine)
    return user, mine, theirs


def session(account_id: str, user, origin: str | None = OURS, token: str | None = None):
    """A dashboard connection as AuthMiddlewareStack hands it on: `user` in the scope."""
    communicator = dashboard(account_id, token)
    communicator.scope["user"] = user
    if origin is not None:
        communicator.scope["headers"] = [(b"origin", origin.encode())]
    return communicator


async def test_a_member_gets_the_snapshot():
    user, mine, _ = await member_of_one_account()
    watcher = session(mine.id, user)
    assert (await watcher.connect())[0]
    snapshot = await watcher.receive_json_from()
    assert (snapshot["type"], snapshot["account"]) == ("snapshot", mine.id)
    await watcher.disconnect()


async def test_session_refusals_keep_the_close_codes():
    user, mine, theirs = await member_of_one_account()
    assert await closed_with(session(theirs.id, user)) == 4403
    assert await closed_with(session("acc_missing", user)) == 4404
    assert await closed_with(session(mine.id, AnonymousUser())) == 4401


async def test_superusers_see_every_account():
    # Staff without the view permission do not: tests/web/test_account_access.py.
    user, _, theirs = await member_of_one_account(is_superuser=True)
    watcher = session(theirs.id, user)
    assert (await watcher.connect())[0]
    assert (await watcher.receive_json_from())["type"] == "snapshot"
    await watcher.disconnect()


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "null", "http://localhost.evil.example:8000", None]
)
async def test_a_session_from_a_foreign_or_missing_origin_is_refused(origin):
    user, mine, _ = await member_of_one_account()
    assert await closed_with(session(mine.id, user, origin=origin)) == 4403


@pytest.mark.parametrize("origin", ["http://127.0.0.1:8000", "https://localhost", "http://[::1]:9"])
async def test_origins_of_allowed_hosts_pass(origin):
    user, mine, _ = await member_of_one_account()
    watcher = session(mine.id, user, origin=origin)
    assert (await watcher.connect())[0]
    assert (await watcher.receive_json_from())["type"] == "snapshot"
    await watcher.disconnect()


async def test_a_token_needs_no_origin_even_beside_a_session():
    user, _, theirs = await member_of_one_account()
    key = await database_sync_to_async(make_dashboard_key)(theirs)
    # A device-style client: token, no Origin, and (here) a session user of another account.
    watcher = session(theirs.id, user, origin=None, token=key)
    assert (await watcher.connect())[0]
    assert (await watcher.receive_json_from())["type"] == "snapshot"
    await watcher.disconnect()
