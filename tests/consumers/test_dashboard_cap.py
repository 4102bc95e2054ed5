"""Dashboards per credential are capped in each web process
(METERLINE_MAX_DASHBOARDS_PER_CREDENTIAL): the one beyond is closed with 4429, and a
dashboard that ends gives its place back, however it ends."""

import pytest
from channels.db import database_sync_to_async

from billing.models import AccountMember
from tests.consumers.conftest import closed_with, dashboard
from tests.consumers.test_dashboard_session import session
from tests.factories import make_account, make_dashboard_key, make_operator_key

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def two_per_credential(settings):
    settings.METERLINE_MAX_DASHBOARDS_PER_CREDENTIAL = 2


async def opened(communicator):
    assert (await communicator.connect())[0]
    assert (await communicator.receive_json_from())["type"] == "snapshot"
    return communicator


@database_sync_to_async
def account_and_keys():
    account = make_account()
    return account, make_dashboard_key(account), make_dashboard_key(account), make_operator_key()


async def test_the_dashboard_beyond_the_cap_is_closed_with_4429():
    account, key, other_key, operator_key = await account_and_keys()
    first, second = (
        await opened(dashboard(account.id, key)),
        await opened(dashboard(account.id, key)),
    )
    assert await closed_with(dashboard(account.id, key)) == 4429
    # Other credentials have places of their own.
    others = [
        await opened(dashboard(account.id, other_key)),
        await opened(dashboard(account.id, operator_key, via="header")),
    ]
    await first.disconnect()
    third = await opened(dashboard(account.id, key))
    assert await closed_with(dashboard(account.id, key)) == 4429
    for communicator in (second, third, *others):
        await communicator.disconnect()


async def test_a_refused_dashboard_takes_no_place():
    account, key, _, _ = await account_and_keys()
    assert await closed_with(dashboard("acc_missing", key)) == 4404
    assert await closed_with(dashboard(account.id, "dbk_wrong")) == 4401
    watchers = [await opened(dashboard(account.id, key)) for _ in range(2)]
    for communicator in watchers:
        await communicator.disconnect()


async def test_a_signed_in_user_is_one_credential_whatever_the_account():
    mine, also_mine = await database_sync_to_async(lambda: (make_account(), make_account()))()

    @database_sync_to_async
    def member():
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.create_user(username="alice")
        for account in (mine, also_mine):
            AccountMember.objects.create(user=user, account=account)
        return user

    alice = await member()
    watchers = [await opened(session(mine.id, alice)), await opened(session(also_mine.id, alice))]
    assert await closed_with(session(mine.id, alice)) == 4429
    for communicator in watchers:
        await communicator.disconnect()
