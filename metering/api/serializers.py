"""Shapes of the meter endpoints and of device HTTP ingest: input and output serializers.

The outputs render every answer and are its schema too (`extend_schema` in the
views). A device token is shown only in the answer that made it, never stored.
"""

from typing import Any

from django.utils import timezone
from rest_framework import serializers

from billing.api.fields import DecimalOutField, DecimalStringField, TimestampField
from billing.models import QUANTITY, Account, Tariff
from billing.selectors import meter_tariff_at
from metering.models import Meter

# Named in SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]: invoice lines have a "kind" too.
METER_KINDS = Meter.Kind.values
SHOWN_ONCE = "The device token: shown this once, only its hash is kept."


class MeterCreateInput(serializers.Serializer):
    account = serializers.PrimaryKeyRelatedField(queryset=Account.objects.all())
    tariff = serializers.PrimaryKeyRelatedField(queryset=Tariff.objects.all())
    name = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=METER_KINDS)
    rollover_at = DecimalStringField(
        max_digits=QUANTITY["max_digits"],
        max_places=QUANTITY["decimal_places"],
        min_exclusive=True,
        required=False,
        allow_null=True,
        default=None,
    )


class MeterUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    active = serializers.BooleanField(required=False)
    tariff = serializers.PrimaryKeyRelatedField(queryset=Tariff.objects.all(), required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # Refused rather than ignored, so an operator who tries to change the
        # kind or the account learns that it did not happen.
        fixed = sorted(set(self.initial_data) - set(self.fields))
        if fixed:
            raise serializers.ValidationError(
                {field: ["cannot be changed; only name, active and tariff can"] for field in fixed}
            )
        return attrs


class MeterOut(serializers.Serializer):
    id = serializers.CharField()
    account = serializers.CharField(source="account_id")
    tariff = serializers.SerializerMethodField(help_text="The tariff in force now.")
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=METER_KINDS)
    rollover_at = DecimalOutField(allow_null=True)
    active = serializers.BooleanField()
    created_at = TimestampField()

    def get_tariff(self, meter: Meter) -> str:
        return meter_tariff_at(meter=meter, at=timezone.now()).id


class MeterCreatedOut(MeterOut):
    # The token is not stored (only its hash): the view hands it over in the context.

    token = serializers.SerializerMethodField(help_text=SHOWN_ONCE)

    def get_token(self, meter: Meter) -> str:
        return self.context["token"]


class MeterTokenOut(serializers.Serializer):
    id = serializers.CharField()
    token = serializers.CharField(help_text=SHOWN_ONCE)


# --- Device HTTP ingest (metering/ingest.py) ----------------------------------------


class ReadingErrorOut(serializers.Serializer):
    """A refused reading, or (id null) the whole body. Resending it will not help."""

    id = serializers.CharField(allow_null=True)
    code = serializers.CharField()
    detail = serializers.CharField()


class AckOut(serializers.Serializer):
    """The WebSocket ack, as the answer to a batch sent over HTTP."""

    ids = serializers.ListField(child=serializers.CharField())
    duplicates = serializers.ListField(child=serializers.CharField())
    errors = ReadingErrorOut(many=True)


class RefusalOut(serializers.Serializer):
    """A request that carried no batch to rate: wrong token, disabled meter, busy."""

    detail = serializers.CharField()
