"""The operator's webhook endpoints: made, changed, given a new secret, deleted.

URLs are checked by the API's input serializer (webhooks/addresses.py); these functions
keep the rules about state: a secret is made here and only its sealed form stored, a
re-enabled endpoint starts its count of failures afresh, a disabled one says why.
"""

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from billing.periods import isoformat
from webhooks.models import WebhookEndpoint
from webhooks.sealing import secret_seal
from webhooks.signing import secret_new

# After a rotation the previous secret signs too, this long (Standard Webhooks' overlap).
ROTATION_OVERLAP = timedelta(hours=24)


def webhook_endpoint_create(*, url: str, events: list[str]) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret (shown this once)."""
    secret = secret_new()
    endpoint = WebhookEndpoint.objects.create(
        url=url, events=events, secret_sealed=secret_seal(secret)
    )
    return endpoint, secret


def webhook_endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    url: str | None = None,
    events: list[str] | None = None,
    active: bool | None = None,
) -> WebhookEndpoint:
    """Change the URL, the events (from now on) or `active`."""
    changed = {"url": url, "events": events}
    fields = [name for name, value in changed.items() if value is not None]
    for name in fields:
        setattr(endpoint, name, changed[name])
    if active is not None and active != endpoint.active:
        endpoint.active = active
        # Enabled again: retries start afresh. Disabled by the operator: say so.
        endpoint.consecutive_failures = 0
        endpoint.disabled_reason = (
            "" if active else f"disabled by the operator at {isoformat(timezone.now())}"
        )
        fields += ["active", "consecutive_failures", "disabled_reason"]
    if fields:
        endpoint.save(update_fields=fields)
    return endpoint


def webhook_secret_rotate(
    *, endpoint: WebhookEndpoint, at: datetime | None = None
) -> tuple[WebhookEndpoint, str]:
    """A new signing secret (shown this once); the current one keeps signing beside it for
    ROTATION_OVERLAP, and the one before it, if any still did, stops now."""
    at = at or timezone.now()
    secret = secret_new()
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        endpoint.previous_secret_sealed = endpoint.secret_sealed
        endpoint.previous_secret_expires_at = at + ROTATION_OVERLAP
        endpoint.secret_sealed = secret_seal(secret)
        endpoint.save(
            update_fields=["previous_secret_sealed", "previous_secret_expires_at", "secret_sealed"]
        )
    return endpoint, secret


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """The endpoint goes, with its deliveries and their attempts."""
    endpoint.delete()
