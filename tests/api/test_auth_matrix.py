"""Every REST endpoint against every kind of wrong credential: 401, JSON, and nothing done.

The same requests with the operator key succeed (the control column), so a
401 here is the credential's doing, not a broken request.
"""

from dataclasses import dataclass

import pytest
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from billing.keys import secret_hash
from billing.models import Account, Alert, Credit, DashboardKey, Invoice, OperatorKey, Tariff
from metering.models import ChargingSession, IdTag, Meter, MeterTariff
from tests.factories import (
    make_account,
    make_dashboard_key,
    make_meter,
    make_operator_key,
    make_tariff,
)
from webhooks.models import WebhookEndpoint
from webhooks.services import webhook_endpoint_create

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # with {account}, {invoice}, {tariff}, {meter} filled from the world
    body: dict | None = None


ENDPOINTS = {
    "account create": Endpoint(
        "post", "/api/v1/accounts/", {"name": "n", "currency": "EUR", "timezone": "UTC"}
    ),
    "account detail": Endpoint("get", "/api/v1/accounts/{account}/"),
    "dashboard key create": Endpoint("post", "/api/v1/accounts/{account}/dashboard-keys/"),
    "dashboard key list": Endpoint("get", "/api/v1/accounts/{account}/dashboard-keys/"),
    "dashboard key revoke": Endpoint("delete", "/api/v1/dashboard-keys/{dashboard_key}/"),
    "usage": Endpoint("get", "/api/v1/accounts/{account}/usage/"),
    "charges": Endpoint("get", "/api/v1/accounts/{account}/charges/"),
    "close period": Endpoint("post", "/api/v1/accounts/{account}/close-period/"),
    "invoice list": Endpoint("get", "/api/v1/invoices/?account={account}"),
    "invoice detail": Endpoint("get", "/api/v1/invoices/{invoice}/"),
    "invoice csv": Endpoint("get", "/api/v1/invoices/{invoice}/lines.csv"),
    "tariff create": Endpoint(
        "post",
        "/api/v1/tariffs/",
        {"name": "t", "currency": "EUR", "model": "per_unit", "unit_price": "0.1"},
    ),
    "tariff detail": Endpoint("get", "/api/v1/tariffs/{tariff}/"),
    "meter create": Endpoint(
        "post",
        "/api/v1/meters/",
        {"account": "{account}", "tariff": "{tariff}", "name": "m", "kind": "delta"},
    ),
    "meter detail": Endpoint("get", "/api/v1/meters/{meter}/"),
    "meter update": Endpoint("patch", "/api/v1/meters/{meter}/", {"active": False}),
    "meter rotate token": Endpoint("post", "/api/v1/meters/{meter}/rotate-token/"),
    "credit": Endpoint(
        "post", "/api/v1/accounts/{account}/credits/", {"amount": "5", "idempotency_key": "k"}
    ),
    "balance": Endpoint("get", "/api/v1/accounts/{account}/balance/"),
    "account update": Endpoint("patch", "/api/v1/accounts/{account}/", {"cutoff_at": "0"}),
    "alert create": Endpoint(
        "post", "/api/v1/accounts/{account}/alerts/", {"kind": "spend_above", "threshold": "1"}
    ),
    "alert list": Endpoint("get", "/api/v1/accounts/{account}/alerts/"),
    "id tag create": Endpoint("post", "/api/v1/accounts/{account}/id-tags/", {"id_tag": "T2"}),
    "id tag list": Endpoint("get", "/api/v1/accounts/{account}/id-tags/"),
    "id tag detail": Endpoint("get", "/api/v1/id-tags/{id_tag}/"),
    "id tag update": Endpoint("patch", "/api/v1/id-tags/{id_tag}/", {"active": False}),
    "charging sessions": Endpoint("get", "/api/v1/accounts/{account}/charging-sessions/"),
    "charging session": Endpoint("get", "/api/v1/charging-sessions/{session}/"),
    "charging session stop": Endpoint("post", "/api/v1/charging-sessions/{session}/stop/"),
    "webhook endpoint create": Endpoint(
        "post",
        "/api/v1/webhook-endpoints/",
        {"url": "https://93.184.215.14/hooks", "events": ["meter.offline"]},
    ),
    "webhook endpoint list": Endpoint("get", "/api/v1/webhook-endpoints/"),
    "webhook endpoint detail": Endpoint("get", "/api/v1/webhook-endpoints/{webhook}/"),
    "webhook endpoint update": Endpoint(
        "patch", "/api/v1/webhook-endpoints/{webhook}/", {"active": False}
    ),
    "webhook endpoint delete": Endpoint("delete", "/api/v1/webhook-endpoints/{webhook}/"),
    "webhook endpoint rotate secret": Endpoint(
        "post", "/api/v1/webhook-endpoints/{webhook}/rotate-secret/"
    ),
    "webhook deliveries": Endpoint("get", "/api/v1/webhook-endpoints/{webhook}/deliveries/"),
    "metrics": Endpoint("get", "/metrics"),
}
PUBLIC = {
    "healthz": "/healthz",
    "schema": "/api/schema/",
    "docs": "/api/docs/",
}
# Authorization headers that carry no usable operator key, by name.
CREDENTIALS = [
    "none",
    "Bearer alone",
    "Basic",
    "Bearer and spaces",
    "wrong key",
    "revoked operator key",
    "dashboard key",
    "device token",
]


@pytest.fixture
def world():
    account = make_account()
    tariff = make_tariff()
    meter, device_token = make_meter(account, tariff)
    operator_key = make_operator_key()
    revoked = make_operator_key()
    OperatorKey.objects.filter(key_hash=secret_hash(revoked)).update(revoked_at=timezone.now())
    control = APIClient()
    control.credentials(HTTP_AUTHORIZATION=f"Bearer {operator_key}")
    invoice = control.post(f"/api/v1/accounts/{account.id}/close-period/").json()["id"]
    revocable = make_dashboard_key(account)
    id_tag, session = _charging(account, tariff)
    return {
        "ids": {
            "id_tag": id_tag.pk,
            "session": session.pk,
            "account": account.id,
            "tariff": tariff.id,
            "meter": meter.id,
            "invoice": invoice,
            "dashboard_key": DashboardKey.objects.get(key_hash=secret_hash(revocable)).pk,
            "webhook": webhook_endpoint_create(
                url="https://93.184.215.14/hooks", events=["meter.offline"]
            )[0].pk,
        },
        "meter": meter,
        "operator key": operator_key,
        "headers": {
            "none": None,
            "Bearer alone": "Bearer",
            "Basic": "Basic x",
            "Bearer and spaces": "Bearer  ",
            "wrong key": "Bearer mlk_not-a-key",
            "revoked operator key": f"Bearer {revoked}",
            "dashboard key": f"Bearer {make_dashboard_key(account)}",
            "device token": f"Bearer {device_token}",
        },
    }


def _charging(account, tariff) -> tuple[IdTag, ChargingSession]:
    """An id tag, and an active session of a connected charge point (so it can be stopped)."""
    charger, _ = make_meter(account, tariff, kind="ocpp")
    Meter.objects.filter(pk=charger.pk).update(charge_point_id="CP-M", connection="specific.x")
    session = ChargingSession.objects.create(
        meter=charger,
        account=account,
        transaction_id=1,
        connector_id=1,
        id_tag="T1",
        id_tag_status="Accepted",
        billed=True,
        started_at=timezone.now(),
        meter_start_wh=0,
    )
    return IdTag.objects.create(account=account, id_tag="T1"), session


def call(endpoint: Endpoint, ids: dict, authorization: str | None):
    client = APIClient()
    if authorization is not None:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    body = None
    if endpoint.body is not None:
        body = {k: v.format(**ids) if isinstance(v, str) else v for k, v in endpoint.body.items()}
    return getattr(client, endpoint.method)(endpoint.path.format(**ids), body, format="json")


def state(meter: Meter) -> tuple:
    """Everything an endpoint above could change."""
    meter.refresh_from_db()
    return (
        Account.objects.count(),
        Tariff.objects.count(),
        Meter.objects.count(),
        MeterTariff.objects.count(),
        DashboardKey.objects.count(),
        DashboardKey.objects.filter(revoked_at__isnull=False).count(),
        Invoice.objects.count(),
        Credit.objects.count(),
        Alert.objects.count(),
        Account.objects.filter(cutoff_at__isnull=False).count(),
        IdTag.objects.filter(active=True).count(),
        ChargingSession.objects.filter(remote_stop_requested_at__isnull=False).count(),
        meter.token_hash,
        meter.active,
        sorted(WebhookEndpoint.objects.values_list("id", "active", "secret_sealed")),
    )


def expected_code(name: str, credential: str) -> str:
    """DRF's code: `not_authenticated` when no Bearer header was sent (nothing to check),
    `authentication_failed` when one was and it did not hold a live operator key.
    /metrics, a plain Django view, answers `not_authenticated` to both."""
    if name == "metrics" or credential in ("none", "Basic"):
        return "not_authenticated"
    return "authentication_failed"


@pytest.mark.parametrize("credential", CREDENTIALS)
@pytest.mark.parametrize("name", ENDPOINTS)
def test_protected_endpoints_refuse_with_401_json_and_do_nothing(world, name, credential):
    before = state(world["meter"])
    response = call(ENDPOINTS[name], world["ids"], world["headers"][credential])
    assert response.status_code == 401, response.content
    assert response["Content-Type"].startswith("application/json")
    assert response["WWW-Authenticate"] == "Bearer"
    payload = response.json()
    assert isinstance(payload["detail"], str) and payload["detail"]
    assert payload["code"] == expected_code(name, credential)
    assert state(world["meter"]) == before


@pytest.mark.parametrize("name", ENDPOINTS)
def test_the_operator_key_opens_every_protected_endpoint(world, name):
    response = call(ENDPOINTS[name], world["ids"], f"Bearer {world['operator key']}")
    assert 200 <= response.status_code < 300, response.content


def test_the_matrix_covers_every_route():
    from django.urls import get_resolver

    def patterns(resolver, prefix=""):
        for entry in resolver.url_patterns:
            if hasattr(entry, "url_patterns"):
                yield from patterns(entry, prefix + str(entry.pattern))
            else:
                yield prefix + str(entry.pattern)

    routes = {
        p for p in patterns(get_resolver()) if p.startswith("api/") or p in ("healthz", "metrics")
    }
    covered = {
        "api/v1/accounts/",
        "api/v1/accounts/<str:account_id>/",
        "api/v1/accounts/<str:account_id>/dashboard-keys/",
        "api/v1/dashboard-keys/<str:key_id>/",
        "api/v1/accounts/<str:account_id>/usage/",
        "api/v1/accounts/<str:account_id>/charges/",
        "api/v1/accounts/<str:account_id>/close-period/",
        "api/v1/accounts/<str:account_id>/credits/",
        "api/v1/accounts/<str:account_id>/balance/",
        "api/v1/accounts/<str:account_id>/alerts/",
        "api/v1/invoices/",
        "api/v1/invoices/<str:invoice_id>/",
        "api/v1/invoices/<str:invoice_id>/lines.csv",
        "api/v1/tariffs/",
        "api/v1/tariffs/<str:tariff_id>/",
        "api/v1/meters/",
        "api/v1/meters/<str:meter_id>/",
        "api/v1/meters/<str:meter_id>/rotate-token/",
        "api/v1/meters/<str:meter_id>/readings/",  # below: device tokens
        "api/v1/accounts/<str:account_id>/id-tags/",
        "api/v1/id-tags/<str:tag_id>/",
        "api/v1/accounts/<str:account_id>/charging-sessions/",
        "api/v1/charging-sessions/<str:session_id>/",
        "api/v1/charging-sessions/<str:session_id>/stop/",
        "api/v1/webhook-endpoints/",
        "api/v1/webhook-endpoints/<str:endpoint_id>/",
        "api/v1/webhook-endpoints/<str:endpoint_id>/rotate-secret/",
        "api/v1/webhook-endpoints/<str:endpoint_id>/deliveries/",
        "api/schema/",
        "api/docs/",
        "healthz",
        "metrics",
    }
    assert routes == covered


@pytest.mark.parametrize("credential", CREDENTIALS)
@pytest.mark.parametrize("name", PUBLIC)
@override_settings(
    REDIS_URL="unix:///nonexistent/meterline-test.sock",
    REDIS_URLS=["unix:///nonexistent/meterline-test.sock"],
)
def test_public_endpoints_ignore_credentials(world, name, credential):
    client = APIClient()
    authorization = world["headers"][credential]
    if authorization is not None:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    response = client.get(PUBLIC[name])
    # Nobody asks for a key. healthz answers 503: the Redis named above does not exist.
    assert response.status_code == (503 if name == "healthz" else 200)
    if name == "healthz":
        assert response.json()["redis"] == "error"


# --- HTTP ingest: device tokens ---------------------------------------------------


@pytest.fixture
def meters():
    account = make_account()
    meter, token = make_meter(account, make_tariff())
    _, other_token = make_meter(account, make_tariff())
    rotated, old_token = make_meter(account, make_tariff())
    control = APIClient()
    control.credentials(HTTP_AUTHORIZATION=f"Bearer {make_operator_key()}")
    new_token = control.post(f"/api/v1/meters/{rotated.id}/rotate-token/").json()["token"]
    disabled, disabled_token = make_meter(account, make_tariff())
    disabling = control.patch(f"/api/v1/meters/{disabled.id}/", {"active": False}, format="json")
    assert disabling.status_code == 200
    return {
        "meter": meter,
        "token": token,
        "rotated": rotated,
        "new token": new_token,
        "disabled": disabled,
        "headers": {
            "none": None,
            "Bearer alone": "Bearer",
            "Basic": f"Basic {token}",
            "Bearer and spaces": "Bearer  ",
            "wrong token": "Bearer mtk_not-a-token",
            "operator key": f"Bearer {make_operator_key()}",
            "dashboard key": f"Bearer {make_dashboard_key(account)}",
            "another meter's token": f"Bearer {other_token}",
            "rotated (old) token": f"Bearer {old_token}",
        },
        "disabled token": disabled_token,
    }


def ingest(meter_id: str, authorization: str | None, reading_id: str = "r-1"):
    body = {"readings": [{"id": reading_id, "ts": timezone.now().isoformat(), "quantity": "1"}]}
    headers = {"Authorization": authorization} if authorization is not None else {}
    return APIClient().post(
        f"/api/v1/meters/{meter_id}/readings/", body, format="json", headers=headers
    )


INGEST_REFUSED = [
    "none",
    "Bearer alone",
    "Basic",
    "Bearer and spaces",
    "wrong token",
    "operator key",
    "dashboard key",
    "another meter's token",
    "rotated (old) token",
]


@pytest.mark.parametrize("credential", INGEST_REFUSED)
def test_http_ingest_refuses_all_but_the_meters_current_token(meters, credential):
    meter = meters["rotated"] if credential == "rotated (old) token" else meters["meter"]
    response = ingest(meter.id, meters["headers"][credential])
    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["detail"]
    assert not meter.readings.exists()


def test_http_ingest_refuses_a_disabled_meters_token_with_403(meters):
    response = ingest(meters["disabled"].id, f"Bearer {meters['disabled token']}")
    assert response.status_code == 403
    assert response.json()["detail"]
    assert not meters["disabled"].readings.exists()


def test_http_ingest_takes_the_current_tokens(meters):
    assert ingest(meters["meter"].id, f"Bearer {meters['token']}").json()["ids"] == ["r-1"]
    rotated = meters["rotated"]
    assert ingest(rotated.id, f"Bearer {meters['new token']}").json()["ids"] == ["r-1"]
