"""Who sees every account: the view permission on accounts (or a superuser), as in Django's
admin; `is_staff` alone only lets a user into the admin, and shows them their own accounts."""

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client

from billing.models import AccountMember
from billing.selectors import account_list_for_user, account_user_allowed
from tests.factories import make_account

pytestmark = pytest.mark.django_db


def make_user(username: str, *, perm: str | None = None, via_group: bool = False, **fields):
    user = get_user_model().objects.create_user(username=username, password="pw-123456", **fields)
    if perm is not None:
        permission = Permission.objects.get(content_type__app_label="billing", codename=perm)
        if via_group:
            group = Group.objects.create(name=f"{username}-viewers")
            group.permissions.add(permission)
            user.groups.add(group)
        else:
            user.user_permissions.add(permission)
    return get_user_model().objects.get(pk=user.pk)  # no permission cache from before


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_staff_without_the_permission_see_only_their_own_accounts():
    mine, theirs = make_account(name="Mine Ltd"), make_account(name="Theirs Ltd")
    staff = make_user("staff", is_staff=True)
    AccountMember.objects.create(user=staff, account=mine)
    assert list(account_list_for_user(user=staff)) == [mine]
    assert not account_user_allowed(user=staff, account_id=theirs.id)
    client = signed_in(staff)
    page = client.get("/").content.decode()
    assert "Mine Ltd" in page and "Theirs Ltd" not in page
    assert client.get(f"/accounts/{theirs.id}/").status_code == 403
    assert client.get(f"/accounts/{mine.id}/").status_code == 200


@pytest.mark.parametrize(
    "who",
    [
        {"perm": "view_account"},
        {"perm": "view_account", "via_group": True},
        {"perm": "view_account", "is_staff": True},
        {"is_superuser": True},
    ],
    ids=["permission", "group permission", "staff with permission", "superuser"],
)
def test_the_view_permission_or_a_superuser_sees_every_account(who):
    mine, theirs = make_account(name="Mine Ltd"), make_account(name="Theirs Ltd")
    user = make_user("viewer", **who)
    assert set(account_list_for_user(user=user)) == {mine, theirs}
    client = signed_in(user)
    page = client.get("/").content.decode()
    assert "Mine Ltd" in page and "Theirs Ltd" in page
    assert client.get(f"/accounts/{theirs.id}/").status_code == 200


def test_another_permission_on_accounts_is_not_enough():
    account = make_account()
    user = make_user("changer", perm="change_account", is_staff=True)
    assert not account_user_allowed(user=user, account_id=account.id)


@pytest.mark.django_db(transaction=True)
async def test_the_dashboard_socket_follows_the_same_rule():
    from tests.consumers.conftest import closed_with
    from tests.consumers.test_dashboard_session import session

    theirs = await database_sync_to_async(make_account)()
    staff = await database_sync_to_async(make_user)("staff", is_staff=True)
    viewer = await database_sync_to_async(make_user)("viewer", perm="view_account")
    assert await closed_with(session(theirs.id, staff)) == 4403
    watcher = session(theirs.id, viewer)
    assert (await watcher.connect())[0]
    assert (await watcher.receive_json_from())["type"] == "snapshot"
    await watcher.disconnect()
