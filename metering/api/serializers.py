"""Shapes of the meter endpoints, of device HTTP ingest and of charge points' id tags and
charging sessions: input and output serializers.

The outputs render every answer and are its schema too (`extend_schema` in the
views). A device token is shown only in the answer that made it, never stored.
"""

from typing import Any

from django.core.validators import RegexValidator
from django.utils import timezone
from rest_framework import serializers

from billing.api.fields import (
    AmountField,
    DecimalOutField,
    DecimalStringField,
    QuantityField,
    TimestampField,
)
from billing.models import QUANTITY, Account, Tariff
from billing.selectors import meter_tariff_at
from metering.models import ChargingSession, Meter
from metering.ocpp.selectors import session_totals

# Named in SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]: invoice lines have a "kind" too.
METER_KINDS = Meter.Kind.values
SHOWN_ONCE = "The device token: shown this once, only its hash is kept."
# OCPP 2.0.1's identifierString, which 1.6 charge points use too, less ":" (it would end
# the HTTP Basic user name).
CHARGE_POINT_ID = RegexValidator(
    r"^[A-Za-z0-9*\-_=+|@.]{1,48}$",
    "1 to 48 of the characters A-Z a-z 0-9 * - _ = + | @ .",
)
# OCPP's IdToken: printable ASCII, at most 20 characters.
ID_TAG = RegexValidator(r"^[ -~]{1,20}$", "1 to 20 printable ASCII characters")


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
    charge_point_id = serializers.CharField(
        validators=[CHARGE_POINT_ID],
        required=False,
        allow_null=True,
        default=None,
        help_text='"ocpp" meters only: the identity it connects with, /ocpp/{charge_point_id}.',
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
    charge_point_id = serializers.CharField(allow_null=True)
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


# --- EV charge points (OCPP 1.6-J) -------------------------------------------------


class IdTagCreateInput(serializers.Serializer):
    id_tag = serializers.CharField(
        validators=[ID_TAG], trim_whitespace=False, help_text="Compared case-insensitively."
    )


class IdTagUpdateInput(serializers.Serializer):
    active = serializers.BooleanField()


class IdTagOut(serializers.Serializer):
    id = serializers.CharField()
    account = serializers.CharField(source="account_id")
    id_tag = serializers.CharField()
    active = serializers.BooleanField()
    created_at = TimestampField()


class WattHoursField(DecimalOutField):
    pattern = r"^[0-9]+$"
    description = 'a register in Wh, as a string: "12000"'

    def write(self, value: int) -> str:
        return str(value)


class ChargingSessionOut(serializers.Serializer):
    """A session; `energy_kwh` and `amount` are its charges so far while it is active."""

    id = serializers.CharField()
    meter = serializers.CharField(source="meter_id")
    charge_point_id = serializers.CharField(source="meter.charge_point_id")
    connector_id = serializers.IntegerField()
    transaction_id = serializers.IntegerField()
    id_tag = serializers.CharField()
    started_at = TimestampField()
    stopped_at = TimestampField(allow_null=True)
    meter_start_wh = WattHoursField()
    meter_stop_wh = WattHoursField(allow_null=True)
    energy_kwh = QuantityField(source="energy_charged")
    amount = AmountField(source="amount_charged")
    currency = serializers.CharField(source="account.currency")
    status = serializers.ChoiceField(choices=ChargingSession.Status.choices)
    billed = serializers.BooleanField(
        help_text="False when the id tag was unknown to the account (Invalid), or another "
        "connector of the charge point had a billed session running."
    )
    stop_reason = serializers.CharField(help_text="StopTransaction's reason; empty while active.")
    remote_stop_requested_at = TimestampField(allow_null=True)
    remote_stop_status = serializers.CharField(
        help_text="The charge point's answer to the last RemoteStopTransaction: Accepted, "
        "Rejected, Requested (no answer yet), or what went wrong."
    )

    def to_representation(self, session: ChargingSession) -> dict[str, Any]:
        session.energy_charged, session.amount_charged = session_totals(session=session)
        return super().to_representation(session)
