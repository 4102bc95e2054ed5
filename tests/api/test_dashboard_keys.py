"""Dashboard keys in the operator API: made (shown once), listed (never shown again), revoked."""

import pytest
from rest_framework.test import APIClient

from billing.keys import secret_hash
from billing.models import DashboardKey
from tests.factories import make_account

pytestmark = pytest.mark.django_db


def keys_path(account_id: str) -> str:
    return f"/api/v1/accounts/{account_id}/dashboard-keys/"


def test_a_new_key_is_shown_once_with_its_id(api):
    account = make_account()
    made = api.post(keys_path(account.id))
    assert made.status_code == 201
    body = made.json()
    assert set(body) == {"id", "key", "created_at"}
    stored = DashboardKey.objects.get(pk=int(body["id"]))
    assert (stored.account_id, stored.key_hash) == (account.id, secret_hash(body["key"]))


def test_the_list_shows_the_accounts_keys_but_never_a_key(api):
    account, other = make_account(), make_account()
    first = api.post(keys_path(account.id)).json()
    second = api.post(keys_path(account.id)).json()
    api.post(keys_path(other.id))
    listed = api.get(keys_path(account.id))
    assert listed.status_code == 200
    results = listed.json()["results"]
    assert [key["id"] for key in results] == [first["id"], second["id"]]
    assert results[0] == {"id": first["id"], "created_at": first["created_at"], "revoked_at": None}
    text = listed.content.decode()
    for secret in (first["key"], second["key"], secret_hash(first["key"])):
        assert secret not in text
    assert api.get(keys_path("acc_missing")).status_code == 404


def test_revoking_a_key_answers_204_once_and_for_all(api):
    account = make_account()
    made = api.post(keys_path(account.id)).json()
    path = f"/api/v1/dashboard-keys/{made['id']}/"
    response = api.delete(path)
    assert (response.status_code, response.content) == (204, b"")
    [listed] = api.get(keys_path(account.id)).json()["results"]
    assert listed["revoked_at"] is not None
    # Again: nothing more to do, and the first revocation's time stays.
    assert api.delete(path).status_code == 204
    assert api.get(keys_path(account.id)).json()["results"] == [listed]


@pytest.mark.parametrize("key_id", ["999999", "dbk_x", "-1", "1.0", "\u0663", "9" * 30], ids=repr)
def test_revoking_an_unknown_key_is_404(api, key_id):
    response = api.delete(f"/api/v1/dashboard-keys/{key_id}/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_the_keys_need_the_operator_key():
    account = make_account()
    key = DashboardKey.objects.create(account=account, key_hash="0" * 64)
    client = APIClient()
    assert client.get(keys_path(account.id)).status_code == 401
    assert client.delete(f"/api/v1/dashboard-keys/{key.pk}/").status_code == 401
    key.refresh_from_db()
    assert key.revoked_at is None
