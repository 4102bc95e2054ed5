"""Operator API authentication: Bearer operator keys, 401 otherwise, and the key command."""

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from billing.keys import secret_hash
from billing.models import OperatorKey
from tests.factories import make_account, make_dashboard_key, make_meter, make_tariff

pytestmark = pytest.mark.django_db


def get_account(client: APIClient, account_id: str):
    return client.get(f"/api/v1/accounts/{account_id}/")


def test_valid_key_is_let_in(api):
    account = make_account()
    assert get_account(api, account.id).status_code == 200


def test_missing_key_is_401_with_challenge():
    response = get_account(APIClient(), make_account().id)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize(
    "header",
    ["Bearer opk_wrong", "Bearer", "Bearer a b", "Basic dXNlcjpwYXNz", "bearer \u00e9"],
)
def test_wrong_key_is_401(header, operator_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = get_account(client, make_account().id)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert set(response.json()) == {"code", "detail"}


def test_revoked_key_is_401(api, operator_key):
    OperatorKey.objects.filter(key_hash=secret_hash(operator_key)).update(revoked_at=timezone.now())
    assert get_account(api, make_account().id).status_code == 401


def test_dashboard_and_device_keys_are_not_operator_keys():
    account = make_account()
    _, device_token = make_meter(account, make_tariff())
    for key in (make_dashboard_key(account), device_token):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        assert get_account(client, account.id).status_code == 401


def test_create_api_key_prints_the_key_last_and_stores_its_hash(capsys):
    call_command("create_api_key", "ops")
    key = capsys.readouterr().out.strip().splitlines()[-1]
    stored = OperatorKey.objects.get(name="ops")
    assert stored.key_hash == secret_hash(key)
    assert key not in stored.key_hash
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert get_account(client, make_account().id).status_code == 200
