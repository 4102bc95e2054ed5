"""Django admin over meters, their tariff history and the readings they sent.

Meters are made through the API (it returns the device token once); here an
operator renames, enables or disables them through the same service the API
calls, so a disabled meter's connections close. Readings and the tariff
history are shown, never changed. The token hash is never shown.
"""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest

from billing.admin import CreatedThroughApiMixin, ReadOnlyMixin
from metering.models import Meter, MeterTariff, Reading
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
    search_fields = ["=id", "name", "=account__id"]
    list_select_related = ["account"]
    date_hierarchy = "created_at"
    fields = [
        "id",
        "account",
        "name",
        "kind",
        "active",
        "rollover_at",
        "last_value",
        "last_ts",
        "connection",
        "created_at",
    ]
    readonly_fields = [f for f in fields if f not in ("name", "active")]
    inlines = [MeterTariffInline]
    actions = ["disable", "enable"]

    @admin.display(boolean=True, description="online")
    def online(self, meter: Meter) -> bool:
        return bool(meter.connection)

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
