"""Reads of the webhooks for the API and the admin."""

from django.db.models import QuerySet

from webhooks.models import WebhookAttempt, WebhookEndpoint


def webhook_endpoint_list() -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.order_by("created_at", "id")


def webhook_attempt_list(
    *, endpoint: WebhookEndpoint, event_id: str | None = None, before_id: int | None = None
) -> QuerySet[WebhookAttempt]:
    """The endpoint's attempts, newest first; of one event (its public id), before an id."""
    attempts = WebhookAttempt.objects.filter(endpoint=endpoint).select_related("delivery__event")
    if event_id is not None:
        attempts = attempts.filter(delivery__event__public_id=event_id)
    if before_id is not None:
        attempts = attempts.filter(id__lt=before_id)
    return attempts.order_by("-id")
