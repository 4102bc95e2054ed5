"""Django admin over meters, their tariff history and the readings they sent, and over
charge points' id tags, charging sessions, connector statuses and the messages of
transactions Meterline did not know.

Meters are made through the API (it returns the device token once); here an
operator renames, enables or disables them through the same service the API
calls, so a disabled meter's connections close. Readings and the tariff
history are shown, never changed. The token hash is never shown. Id tags are
made and blocked here or through the API; sessions are only shown, with what
they have been charged so far.
"""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest

from billing.admin import CreatedThroughApiMixin, ReadOnlyMixin
from billing.money import format_amount, format_quantity
from metering.models import (
    ChargingSession,
    ConnectorStatus,
    IdTag,
    Meter,
    MeterTariff,
    Reading,
    UnknownTransactionMessage,
)
from metering.ocpp.selectors import session_totals
from metering.ocpp.services import id_tag_update
from metering.services import meter_update


class MeterTariffInline(ReadOnlyMixin, admin.TabularInline):
    model = MeterTariff
    fields = ["tariff", "effective_from"]
    readonly_fields = fields
    extra = 0


@admin.register(Meter)
class MeterAdmin(CreatedThroughApiMixin, admin.ModelAdmin):
    list_display = ["id", "name", "account", "kind", "active", "online", "last_ts", "created_at"]
    list_filter = ["kind", "active", "account", "created_at"]
    search_fields = ["=id", "name", "=account__id", "=charge_point_id"]
    list_select_related = ["account"]
    date_hierarchy = "created_at"
    fields = [
        "id",
        "account",
        "name",
        "kind",
        "charge_point_id",
        "active",
        "rollover_at",
        "last_value",
        "last_ts",
        "connection",
        "connectors",
        "created_at",
    ]
    readonly_fields = [f for f in fields if f not in ("name", "active")]
    inlines = [MeterTariffInline]
    actions = ["disable", "enable"]

    @admin.display(boolean=True, description="online")
    def online(self, meter: Meter) -> bool:
        return bool(meter.connection)

    @admin.display(description="connectors (OCPP)")
    def connectors(self, meter: Meter) -> str:
        """Each connector's last StatusNotification."""
        statuses = ConnectorStatus.objects.filter(meter=meter).order_by("connector_id")
        return "; ".join(
            f"{s.connector_id}: {s.status} ({s.error_code}) at {s.at:%Y-%m-%d %H:%M:%S}"
            for s in statuses
        )

    def save_model(self, request: HttpRequest, obj: Meter, form: ModelForm, change: bool) -> None:
        # Through the service: it locks the row, saves only these fields and
        # closes a disabled meter's connections once committed.
        changed = {f: form.cleaned_data[f] for f in form.changed_data if f in ("name", "active")}
        if changed:
            meter_update(meter=obj, **changed)

    def _set_active(self, request: HttpRequest, queryset: QuerySet[Meter], active: bool) -> None:
        meters = list(queryset.exclude(active=active))
        for meter in meters:
            meter_update(meter=meter, active=active)
        state = "Enabled" if active else "Disabled"
        self.message_user(request, f"{state} {len(meters)} meter(s).", messages.SUCCESS)

    @admin.action(description="Disable the selected meters", permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet[Meter]) -> None:
        self._set_active(request, queryset, active=False)

    @admin.action(description="Enable the selected meters", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[Meter]) -> None:
        self._set_active(request, queryset, active=True)


@admin.register(Reading)
class ReadingAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["id", "reading_id", "meter", "ts", "quantity", "value", "received_at"]
    list_filter = ["meter", "ts"]
    search_fields = ["=id", "reading_id", "=meter__id"]
    list_select_related = ["meter"]
    date_hierarchy = "ts"


@admin.register(IdTag)
class IdTagAdmin(admin.ModelAdmin):
    list_display = ["id_tag", "account", "active", "created_at"]
    list_filter = ["active", "created_at"]
    search_fields = ["id_tag", "=account__id"]
    list_select_related = ["account"]
    fields = ["id", "account", "id_tag", "active", "created_at"]
    readonly_fields = ["id", "created_at"]
    actions = ["block", "unblock"]

    def get_readonly_fields(self, request: HttpRequest, obj: IdTag | None = None) -> list[str]:
        # A tag names a card: made once, then only blocked or unblocked.
        return [*self.readonly_fields, "account", "id_tag"] if obj else self.readonly_fields

    @admin.action(description="Block the selected id tags (Authorize: Blocked)")
    def block(self, request: HttpRequest, queryset: QuerySet[IdTag]) -> None:
        for tag in queryset:
            id_tag_update(tag=tag, active=False)

    @admin.action(description="Unblock the selected id tags")
    def unblock(self, request: HttpRequest, queryset: QuerySet[IdTag]) -> None:
        for tag in queryset:
            id_tag_update(tag=tag, active=True)


@admin.register(ChargingSession)
class ChargingSessionAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "transaction_id",
        "meter",
        "connector_id",
        "id_tag",
        "status",
        "started_at",
        "stopped_at",
        "energy",
        "charged",
        "billed",
    ]
    list_filter = ["status", "billed", "started_at"]
    search_fields = ["=id", "=transaction_id", "id_tag", "=meter__id", "=meter__charge_point_id"]
    list_select_related = ["meter", "account"]
    date_hierarchy = "started_at"

    @admin.display(description="energy (kWh)")
    def energy(self, session: ChargingSession) -> str:
        return format_quantity(session_totals(session=session)[0])

    @admin.display(description="amount so far")
    def charged(self, session: ChargingSession) -> str:
        amount = format_amount(session_totals(session=session)[1])
        return f"{amount} {session.account.currency}"


@admin.register(UnknownTransactionMessage)
class UnknownTransactionMessageAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["received_at", "meter", "action", "transaction_id"]
    list_filter = ["action", "received_at"]
    search_fields = ["=meter__id", "=transaction_id"]
    list_select_related = ["meter"]
