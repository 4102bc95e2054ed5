"""Admin: endpoints, deliveries and attempts browsable, secrets never shown, and "resend"
puts a delivery back to be sent (due now, its schedule afresh)."""

import pytest
from django.contrib.admin.utils import quote
from django.urls import reverse
from django.utils import timezone

from billing.models import Event
from billing.outbox import event_record
from tests.factories import make_account
from tests.webhooks.conftest import deliver_all, endpoint_for
from webhooks.models import WebhookAttempt, WebhookDelivery

# `admin_client` is pytest-django's: a client logged in as a superuser.
pytestmark = pytest.mark.django_db


def test_pages_render_without_secrets_and_resend_sends_again(admin_client, receiver, settings):
    settings.METERLINE_WEBHOOK_RETRY_SECONDS = []  # one attempt, then given up
    hooks = receiver(answers=[500, 200])
    endpoint = endpoint_for(hooks, [Event.Type.METER_OFFLINE])
    account = make_account()
    event = event_record(type=Event.Type.METER_OFFLINE, account_id=account.id, data={}, live=False)
    deliver_all()
    delivery = WebhookDelivery.objects.get(event=event)
    assert delivery.status == "failed"

    pages = [
        reverse("admin:webhooks_webhookendpoint_changelist"),
        # quoted as the admin quotes its links: an id like "whe_40..." reads as "whe@..." unquoted
        reverse("admin:webhooks_webhookendpoint_change", args=[quote(endpoint.pk)]),
        reverse("admin:webhooks_webhookdelivery_changelist"),
        reverse("admin:webhooks_webhookdelivery_change", args=[delivery.pk]),
    ]
    for page in pages:
        response = admin_client.get(page)
        assert response.status_code == 200, page
        html = response.content.decode()
        assert hooks.secrets[0] not in html and endpoint.secret_sealed not in html
    assert event.public_id in admin_client.get(pages[2]).content.decode()

    before = timezone.now()
    response = admin_client.post(
        pages[2], {"action": "resend", "_selected_action": [delivery.pk]}, follow=True
    )
    assert response.status_code == 200
    delivery.refresh_from_db()
    assert (delivery.status, delivery.scheduled_from >= before) == ("pending", True)
    deliver_all()
    delivery.refresh_from_db()
    assert delivery.status == "delivered"
    assert [r.webhook_id for r in hooks.received] == [event.public_id] * 2
    assert list(WebhookAttempt.objects.order_by("number").values_list("number", "status_code")) == [
        (1, 500),
        (2, 200),
    ]


def test_endpoints_are_disabled_and_enabled_from_the_admin(admin_client, receiver):
    endpoint = endpoint_for(receiver(), [Event.Type.METER_OFFLINE])
    page = reverse("admin:webhooks_webhookendpoint_changelist")

    admin_client.post(page, {"action": "disable", "_selected_action": [endpoint.pk]})
    endpoint.refresh_from_db()
    assert not endpoint.active and "disabled by the operator" in endpoint.disabled_reason

    admin_client.post(page, {"action": "enable", "_selected_action": [endpoint.pk]})
    endpoint.refresh_from_db()
    assert (endpoint.active, endpoint.disabled_reason) == (True, "")
