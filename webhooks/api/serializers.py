"""Shapes of the webhook endpoints API: inputs checked here (URLs against the SSRF rules of
webhooks/addresses.py), outputs that render every answer and are its schema."""

from django.conf import settings
from rest_framework import serializers

from billing.api.fields import TimestampField
from billing.models import Event
from webhooks.addresses import url_problem
from webhooks.models import WebhookAttempt, WebhookEndpoint

EVENT_TYPES = Event.Type.values
SHOWN_ONCE = "The signing secret (whsec_ and base64), shown this once: keep it."


class WebhookEndpointCreateInput(serializers.Serializer):
    url = serializers.CharField(
        max_length=2000,
        help_text="https:// only, to a host with public addresses only "
        "(unless METERLINE_WEBHOOK_ALLOW_PRIVATE=1).",
    )
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_TYPES), allow_empty=False
    )

    def validate_url(self, value: str) -> str:
        problem = url_problem(value, allow_private=settings.METERLINE_WEBHOOK_ALLOW_PRIVATE)
        if problem:
            raise serializers.ValidationError(problem)
        return value

    def validate_events(self, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class WebhookEndpointUpdateInput(WebhookEndpointCreateInput):
    active = serializers.BooleanField(
        help_text="false disables the endpoint; true enables it again, failures counted afresh."
    )


class WebhookAttemptListInput(serializers.Serializer):
    event = serializers.CharField(required=False, max_length=32, help_text="One event's id.")
    before = serializers.IntegerField(required=False, min_value=0)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=100)


# --- Outputs ----------------------------------------------------------------------------


class WebhookEndpointOut(serializers.Serializer):
    id = serializers.CharField()
    url = serializers.CharField()
    events = serializers.ListField(child=serializers.ChoiceField(choices=EVENT_TYPES))
    active = serializers.BooleanField()
    disabled_reason = serializers.CharField(
        help_text='Why the endpoint is disabled; "" while it is active.'
    )
    created_at = TimestampField()
    previous_secret_expires_at = TimestampField(
        allow_null=True, help_text="Until when the secret before the last rotation signs too."
    )


class WebhookEndpointCreatedOut(WebhookEndpointOut):
    # Only the sealed secret is stored: the view hands the plain one over in the context.
    secret = serializers.SerializerMethodField(help_text=SHOWN_ONCE)

    def get_secret(self, endpoint: WebhookEndpoint) -> str:
        return self.context["secret"]


class WebhookEndpointListOut(serializers.Serializer):
    results = WebhookEndpointOut(many=True)


class WebhookSecretOut(serializers.Serializer):
    id = serializers.CharField()
    secret = serializers.CharField(help_text=SHOWN_ONCE)
    previous_secret_expires_at = TimestampField(
        help_text="Until when the secret it replaces signs too."
    )


class WebhookAttemptOut(serializers.Serializer):
    event_id = serializers.CharField(source="delivery.event.public_id")
    type = serializers.ChoiceField(choices=EVENT_TYPES, source="delivery.event.type")
    attempt = serializers.IntegerField(source="number", help_text="Counts from 1.")
    status_code = serializers.IntegerField(
        allow_null=True, help_text="The receiver's HTTP status; null when it gave none."
    )
    error = serializers.SerializerMethodField(
        help_text="Why the attempt failed (timeout, refused, HTTP 500...); null if delivered."
    )
    attempted_at = TimestampField()
    delivered_at = TimestampField(allow_null=True)
    duration_ms = serializers.IntegerField()

    def get_error(self, attempt: WebhookAttempt) -> str | None:
        return attempt.error or None


class WebhookAttemptPageOut(serializers.Serializer):
    results = WebhookAttemptOut(many=True)
    next = serializers.URLField(allow_null=True, help_text="The next (older) page, or null.")
