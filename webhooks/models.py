"""Webhook endpoints of the operator, and the delivery of each event to each of them.

An event of the outbox (billing.models.Event) becomes one `WebhookDelivery` per active
endpoint subscribed to its type (webhooks/fanout.py); each try at sending it is a
`WebhookAttempt`. The retry schedule lives here (`next_attempt_at`), not in the broker,
so a restart of every process loses no pending delivery.
"""

from functools import partial

from django.db import models
from django.utils import timezone

from billing.keys import new_id
from billing.models import Event


class WebhookEndpoint(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=partial(new_id, "whe"))
    url = models.CharField(max_length=2000)
    # Event types (billing.models.Event.Type values) the endpoint receives.
    events = models.JSONField(default=list)
    # The signing secret ("whsec_..."), encrypted with a key derived from SECRET_KEY
    # (webhooks/sealing.py); after a rotation the previous one also signs until it expires.
    secret_sealed = models.TextField()
    previous_secret_sealed = models.TextField(blank=True, default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    active = models.BooleanField(default=True)
    # Why Meterline disabled it ("" when the operator did, or while active).
    disabled_reason = models.TextField(blank=True, default="")
    # Events given up on in a row; at METERLINE_WEBHOOK_DISABLE_AFTER the endpoint is disabled.
    consecutive_failures = models.IntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    # The process delivering to it now, until when (webhooks/delivery.py): one in flight.
    lease_owner = models.CharField(max_length=100, blank=True, default="")
    lease_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.url} ({self.id})"


class WebhookDelivery(models.Model):
    """One event for one endpoint: pending until a 2xx, or failed once retries ran out."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    id = models.BigAutoField(primary_key=True)
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="webhook_deliveries")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.IntegerField(default=0)
    # When the next attempt is due (pending only): the schedule, kept in the database.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # When its retry schedule started: the fan-out, or an operator's resend.
    scheduled_from = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event"], name="webhook_delivery_once")
        ]
        indexes = [
            # An endpoint's next delivery: its pending one with the lowest event id.
            models.Index(
                fields=["endpoint", "event"],
                name="webhook_delivery_pending",
                condition=models.Q(status="pending"),
            ),
            # The sweeper's question: which endpoints have a delivery due?
            models.Index(
                fields=["next_attempt_at"],
                name="webhook_delivery_due",
                condition=models.Q(status="pending"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} to {self.endpoint_id}: {self.status}"


class WebhookAttempt(models.Model):
    """One POST of a delivery, as the operator sees it in GET .../deliveries/."""

    id = models.BigAutoField(primary_key=True)
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="tries")
    # Denormalised from the delivery: an endpoint's attempts are listed newest first.
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="tries")
    number = models.IntegerField()
    attempted_at = models.DateTimeField()
    # The receiver's HTTP status, None when there was no answer (refused, timeout, TLS).
    status_code = models.IntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    duration_ms = models.IntegerField(default=0)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="webhook_attempt_once")
        ]
        indexes = [models.Index(fields=["endpoint", "-id"], name="webhook_attempt_by_endpoint")]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}"
