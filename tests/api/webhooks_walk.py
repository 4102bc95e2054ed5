"""The webhook endpoints' part of the walk over every operation
(tests/api/test_responses_match_schema.py): each answer they document, once."""

from typing import Any

from django.utils import timezone

from billing.outbox import event_record
from webhooks.delivery import attempt_record
from webhooks.fanout import events_fan_out
from webhooks.models import WebhookDelivery
from webhooks.sending import Answer

ENDPOINTS = "/api/v1/webhook-endpoints/"


def webhook_endpoints(walk: Any, account: str) -> None:
    body = {"url": "https://93.184.215.14/hooks", "events": ["meter.offline"]}
    endpoint = walk.send("post", ENDPOINTS, body, status=201)["id"]
    walk.send("post", ENDPOINTS, {**body, "url": "https://10.0.0.1/"}, status=400)
    walk.send("get", ENDPOINTS, status=200)
    path = f"{ENDPOINTS}{endpoint}/"
    walk.send("get", path, status=200)
    walk.send("get", f"{ENDPOINTS}whe_missing/", status=404)
    walk.send("patch", path, {"active": False}, status=200)
    walk.send("patch", path, {"active": True, "events": ["alert.triggered"]}, status=200)
    walk.send("patch", path, {"events": []}, status=400)
    walk.send("post", f"{path}rotate-secret/", status=200)
    walk.send("patch", path, {"events": ["meter.offline"]}, status=200)
    event_record(type="meter.offline", account_id=account, data={"account": account}, live=False)
    events_fan_out()
    for delivery in WebhookDelivery.objects.filter(endpoint_id=endpoint):
        answer = Answer(503, "HTTP 503")
        attempt_record(delivery=delivery, answer=answer, attempted_at=timezone.now(), duration_ms=1)
    page = walk.send("get", f"{path}deliveries/", status=200)
    assert page["results"][0]["status_code"] == 503
    walk.send("get", f"{path}deliveries/?before=x", status=400)
    walk.send("delete", path, status=204)
    walk.send("delete", path, status=404)
