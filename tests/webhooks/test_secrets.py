"""Signing secrets: Standard Webhooks signatures any receiver's library verifies, two of
them for a day after a rotation, and sealed at rest under a key derived from SECRET_KEY."""

import base64
from datetime import timedelta

import pytest
from cryptography.fernet import InvalidToken
from django.utils import timezone
from standardwebhooks import Webhook, WebhookVerificationError

from billing.models import Event
from billing.outbox import event_record
from tests.factories import make_account
from tests.webhooks.conftest import deliver_all, endpoint_for
from webhooks.models import WebhookEndpoint
from webhooks.sealing import secret_unseal
from webhooks.services import webhook_secret_rotate
from webhooks.signing import secret_new, webhook_headers

BODY = b'{"type":"meter.offline","timestamp":"2026-12-01T09:14:03Z","data":{}}'


def test_a_secret_is_whsec_and_at_least_24_random_bytes():
    secret = secret_new()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) >= 24
    assert secret_new() != secret


def test_the_signature_verifies_with_the_standardwebhooks_library():
    secret = secret_new()
    now = int(timezone.now().timestamp())
    headers = webhook_headers(secrets=[secret], msg_id="evt_1", timestamp=now, body=BODY)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(BODY, headers) == {
        "type": "meter.offline",
        "timestamp": "2026-12-01T09:14:03Z",
        "data": {},
    }
    with pytest.raises(WebhookVerificationError):
        Webhook(secret_new()).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"{}", b'{"x":1}'), headers)


def test_two_secrets_sign_side_by_side_and_either_verifies():
    old, new = secret_new(), secret_new()
    now = int(timezone.now().timestamp())
    headers = webhook_headers(secrets=[new, old], msg_id="evt_1", timestamp=now, body=BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(BODY, headers)
    Webhook(new).verify(BODY, headers)


@pytest.mark.django_db
def test_after_a_rotation_old_and_new_secret_both_verify_for_24_hours(receiver):
    old_only = receiver()
    endpoint = endpoint_for(old_only, [Event.Type.METER_OFFLINE])
    endpoint, new_secret = webhook_secret_rotate(endpoint=endpoint)
    assert new_secret not in old_only.secrets
    new_only = receiver(secret=new_secret)
    # The same endpoint, seen by a receiver that knows only one of the two secrets.
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url=new_only.url)
    remaining = endpoint.previous_secret_expires_at - timezone.now()
    assert timedelta(hours=23, minutes=59) < remaining <= timedelta(hours=24)
    account = make_account()
    event_record(type=Event.Type.METER_OFFLINE, account_id=account.id, data={}, live=False)

    deliver_all()

    [request] = new_only.delivered()
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert old_only.verify(request.headers, request.body)  # the old secret still signs
    # A day later only the new one does.
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        previous_secret_expires_at=timezone.now() - timedelta(seconds=1)
    )
    event_record(type=Event.Type.METER_OFFLINE, account_id=account.id, data={}, live=False)
    deliver_all()
    later = new_only.delivered()[-1]
    assert len(later.headers["webhook-signature"].split(" ")) == 1
    assert later.verified and not old_only.verify(later.headers, later.body)


@pytest.mark.django_db
def test_secrets_are_sealed_at_rest_under_a_key_from_secret_key(settings, receiver):
    hooks = receiver()
    endpoint = endpoint_for(hooks, [Event.Type.METER_OFFLINE])
    secret = hooks.secrets[0]
    stored = WebhookEndpoint.objects.get(pk=endpoint.pk).secret_sealed
    assert secret not in stored and secret.removeprefix("whsec_") not in stored
    assert secret_unseal(stored) == secret
    # Another SECRET_KEY opens nothing; the old one as a fallback still does.
    old_key = settings.SECRET_KEY
    settings.SECRET_KEY = "another-key-entirely"
    with pytest.raises(InvalidToken):
        secret_unseal(stored)
    settings.SECRET_KEY_FALLBACKS = [old_key]
    assert secret_unseal(stored) == secret
