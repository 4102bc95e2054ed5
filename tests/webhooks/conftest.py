"""Fixtures of the webhook tests: real receivers on 127.0.0.1, settings that allow them
(METERLINE_WEBHOOK_ALLOW_PRIVATE) and retry at once, and deliveries made by hand."""

from collections.abc import Callable, Iterator

import pytest

from tests.webhooks.receiver import Receiver
from webhooks.delivery import endpoint_deliver
from webhooks.fanout import events_fan_out
from webhooks.models import WebhookEndpoint
from webhooks.services import webhook_endpoint_create

OWNER = "tests:1:owner"


@pytest.fixture(autouse=True)
def webhook_settings(settings):
    settings.METERLINE_WEBHOOK_ALLOW_PRIVATE = True
    # Every retry due at once: a test sees the whole schedule without waiting for it.
    settings.METERLINE_WEBHOOK_RETRY_SECONDS = [0, 0, 0, 0, 0]
    settings.METERLINE_WEBHOOK_TIMEOUT_SECONDS = 2
    settings.METERLINE_WEBHOOK_DISABLE_AFTER = 3
    return settings


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def make(**kwargs) -> Receiver:
        started.append(Receiver(**kwargs).start())
        return started[-1]

    yield make
    for one in started:
        one.stop()


def endpoint_for(receiver: Receiver, events: list[str], url: str | None = None) -> WebhookEndpoint:
    """An endpoint to the receiver, which then verifies with its secret."""
    endpoint, secret = webhook_endpoint_create(url=url or receiver.url, events=events)
    receiver.secrets.append(secret)
    return endpoint


def deliver_all() -> int:
    """Fan out, then send everything due to every endpoint, as the worker's threads would;
    returns the attempts made."""
    events_fan_out()
    attempts = 0
    for endpoint_id in WebhookEndpoint.objects.values_list("id", flat=True):
        attempts += endpoint_deliver(endpoint_id=endpoint_id, owner=OWNER)
    return attempts
