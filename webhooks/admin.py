"""Django admin over webhook endpoints, their deliveries and every attempt, with "resend".

Endpoints are made through the API (which checks URLs against the SSRF rules and hands
the secret over once); here they can be browsed, disabled or enabled. Deliveries and
attempts are records of what was sent: shown, never edited, and a delivery can be
resent (pending again, due now, its retry schedule afresh). Secrets are never shown.
"""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from billing.admin import ReadOnlyMixin
from billing.outbox import SWEEP_TASK, webhooks_wake
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.services import webhook_endpoint_update


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["id", "url", "active", "disabled_reason", "consecutive_failures", "created_at"]
    list_filter = ["active"]
    search_fields = ["=id", "url"]
    fields = [
        "id",
        "url",
        "events",
        "active",
        "disabled_reason",
        "consecutive_failures",
        "previous_secret_expires_at",
        "created_at",
        "lease_owner",
        "lease_until",
    ]
    actions = ["enable", "disable"]

    @admin.action(description="Enable (failures counted afresh)")
    def enable(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            webhook_endpoint_update(endpoint=endpoint, active=True)
        self.message_user(request, f"{len(queryset)} endpoint(s) enabled.", messages.SUCCESS)

    @admin.action(description="Disable")
    def disable(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            webhook_endpoint_update(endpoint=endpoint, active=False)
        self.message_user(request, f"{len(queryset)} endpoint(s) disabled.", messages.SUCCESS)


class WebhookAttemptInline(ReadOnlyMixin, admin.TabularInline):
    model = WebhookAttempt
    fields = ["number", "attempted_at", "status_code", "error", "duration_ms", "delivered_at"]
    readonly_fields = fields
    ordering = ["number"]
    extra = 0


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "event_public_id",
        "event_type",
        "endpoint",
        "status",
        "attempts",
        "next_attempt_at",
        "delivered_at",
    ]
    list_filter = ["status", "event__type"]
    search_fields = ["=event__public_id", "=endpoint__id"]
    list_select_related = ["event", "endpoint"]
    date_hierarchy = "created_at"
    fields = [
        "event",
        "endpoint",
        "status",
        "attempts",
        "next_attempt_at",
        "scheduled_from",
        "delivered_at",
        "created_at",
    ]
    inlines = [WebhookAttemptInline]
    actions = ["resend"]

    @admin.display(description="event", ordering="event__public_id")
    def event_public_id(self, delivery: WebhookDelivery) -> str:
        return delivery.event.public_id

    @admin.display(description="type", ordering="event__type")
    def event_type(self, delivery: WebhookDelivery) -> str:
        return delivery.event.type

    @admin.action(description="Resend (due now, retried afresh)")
    def resend(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        now = timezone.now()
        count = queryset.update(
            status=WebhookDelivery.Status.PENDING,
            next_attempt_at=now,
            scheduled_from=now,
            delivered_at=None,
        )
        webhooks_wake(SWEEP_TASK)
        self.message_user(request, f"{count} deliveries will be sent again.", messages.SUCCESS)
