"""Shapes of the meter endpoints: input serializers and the output dict (never the token)."""

from typing import Any

from django.utils import timezone
from rest_framework import serializers

from billing.api.fields import DecimalStringField
from billing.models import QUANTITY, Account, Tariff
from billing.periods import isoformat
from billing.selectors import meter_tariff_at
from metering.models import Meter


class MeterCreateInput(serializers.Serializer):
    account = serializers.PrimaryKeyRelatedField(queryset=Account.objects.all())
    tariff = serializers.PrimaryKeyRelatedField(queryset=Tariff.objects.all())
    name = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=Meter.Kind.values)
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


def meter_out(meter: Meter) -> dict[str, Any]:
    return {
        "id": meter.id,
        "account": meter.account_id,
        "tariff": meter_tariff_at(meter=meter, at=timezone.now()).id,
        "name": meter.name,
        "kind": meter.kind,
        "rollover_at": None if meter.rollover_at is None else f"{meter.rollover_at.normalize():f}",
        "active": meter.active,
        "created_at": isoformat(meter.created_at),
    }
