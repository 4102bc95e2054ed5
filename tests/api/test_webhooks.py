"""The webhook endpoints API (CONTRACT.md section 7): each answer checked against the served
schema (tests/api/conftest.py), the SSRF rules at creation, the secret shown once."""

import pytest
from django.utils import timezone

from billing.models import Event
from billing.outbox import event_record
from tests.factories import make_account
from webhooks.delivery import attempt_record
from webhooks.fanout import events_fan_out
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.sending import Answer

pytestmark = pytest.mark.django_db

ENDPOINTS = "/api/v1/webhook-endpoints/"
PUBLIC = "https://93.184.215.14/hooks"  # a public address written out: no DNS needed here


def create(api, url: str = PUBLIC, events=("meter.offline",)):
    return api.post(ENDPOINTS, {"url": url, "events": list(events)}, format="json")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://127.0.0.1/hooks", "127.0.0.1 is a loopback address"),
        ("https://10.0.0.1/hooks", "10.0.0.1 is a private address"),
        ("https://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("https://[::1]:8443/hooks", "::1 is a loopback address"),
        ("https://localhost/hooks", "localhost resolves to"),
        ("http://93.184.215.14/hooks", "must be an https:// URL"),
        ("https://user:pw@93.184.215.14/hooks", "must not carry a user or password"),
        ("https:///hooks", "names no host"),
        ("ftp://93.184.215.14/", "must be an https:// URL"),
        ("https://does-not-exist.invalid/hooks", "does not resolve"),
    ],
)
def test_urls_that_could_reach_inside_are_refused_naming_url(api, url, says):
    response = create(api, url)
    assert response.status_code == 400, response.content
    assert list(response.json()["errors"]) == ["url"]
    assert says in response.json()["errors"]["url"][0]
    assert not WebhookEndpoint.objects.exists()


def test_with_the_flag_http_and_private_addresses_are_allowed(api, settings):
    settings.METERLINE_WEBHOOK_ALLOW_PRIVATE = True
    for url in ("http://127.0.0.1:9/hooks", "https://localhost/hooks", "http://[::1]:9/"):
        assert create(api, url).status_code == 201, url


def test_an_endpoint_is_made_listed_changed_rotated_and_deleted(api):
    created = create(api, events=["meter.offline", "alert.triggered", "meter.offline"])
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["secret"].startswith("whsec_")
    assert body["events"] == ["meter.offline", "alert.triggered"]
    assert (body["active"], body["disabled_reason"], body["url"]) == (True, "", PUBLIC)
    path = f"{ENDPOINTS}{body['id']}/"
    shown = api.get(path).json()
    assert "secret" not in shown and shown["id"] == body["id"]
    assert [e["id"] for e in api.get(ENDPOINTS).json()["results"]] == [body["id"]]

    disabled = api.patch(path, {"active": False}, format="json").json()
    assert not disabled["active"] and "disabled by the operator" in disabled["disabled_reason"]
    enabled = api.patch(path, {"active": True, "events": ["invoice.finalized"]}, format="json")
    assert (enabled.json()["active"], enabled.json()["disabled_reason"]) == (True, "")
    assert enabled.json()["events"] == ["invoice.finalized"]
    bad = api.patch(path, {"url": "https://10.0.0.1/"}, format="json")
    assert bad.status_code == 400 and list(bad.json()["errors"]) == ["url"]

    rotated = api.post(f"{path}rotate-secret/").json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != body["secret"]
    assert rotated["previous_secret_expires_at"].endswith("Z")

    assert api.delete(path).status_code == 204
    assert api.get(path).status_code == 404
    assert api.delete(path).status_code == 404


def test_bad_events_and_missing_fields_are_400_by_field(api):
    response = api.post(ENDPOINTS, {"url": PUBLIC, "events": ["meter.exploded"]}, format="json")
    assert response.status_code == 400 and list(response.json()["errors"]) == ["events.0"]
    response = api.post(ENDPOINTS, {"events": []}, format="json")
    assert set(response.json()["errors"]) == {"url", "events"}


def test_every_attempt_is_listed_newest_first_a_page_at_a_time(api):
    endpoint_id = create(api).json()["id"]
    account = make_account()
    events = [
        event_record(type=Event.Type.METER_OFFLINE, account_id=account.id, data={}, live=False)
        for _ in range(2)
    ]
    events_fan_out()
    first, second = (WebhookDelivery.objects.get(event=event) for event in events)
    attempt_record(
        delivery=first, answer=Answer(500, "HTTP 500"), attempted_at=timezone.now(), duration_ms=3
    )
    first.refresh_from_db()
    attempt_record(
        delivery=first, answer=Answer(200, ""), attempted_at=timezone.now(), duration_ms=2
    )
    attempt_record(
        delivery=second,
        answer=Answer(None, "timed out after 10 s"),
        attempted_at=timezone.now(),
        duration_ms=10000,
    )
    path = f"{ENDPOINTS}{endpoint_id}/deliveries/"

    page = api.get(path, {"limit": 2}).json()
    rows = [(r["event_id"], r["attempt"], r["status_code"], r["error"]) for r in page["results"]]
    assert rows == [
        (events[1].public_id, 1, None, "timed out after 10 s"),
        (events[0].public_id, 2, 200, None),
    ]
    assert page["results"][1]["delivered_at"] is not None
    assert page["results"][0]["type"] == "meter.offline"
    rest = api.get(page["next"]).json()
    assert [(r["attempt"], r["status_code"], r["delivered_at"]) for r in rest["results"]] == [
        (1, 500, None)
    ]
    assert rest["next"] is None
    one = api.get(path, {"event": events[1].public_id}).json()["results"]
    assert [r["event_id"] for r in one] == [events[1].public_id]
    assert api.get(path, {"limit": 0}).status_code == 400
    assert api.get(f"{ENDPOINTS}whe_missing/deliveries/").status_code == 404
