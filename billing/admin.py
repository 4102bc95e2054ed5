"""Django admin over accounts, tariffs, operator keys, credits, alerts, charges, running usage
and invoices.

Rows that carry money or usage (charges, period usage, invoices) are shown,
never added, changed or deleted here: they change only through the rating
and invoicing services. Accounts and tariffs are made through the API, which
checks currencies, time zones and pricing parameters. Key hashes are never shown.
"""

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from billing.account_services import operator_keys_revoke
from billing.credit_services import credit_add
from billing.keys import new_id
from billing.models import (
    Account,
    AccountMember,
    Alert,
    Charge,
    Credit,
    Invoice,
    InvoiceLine,
    MeterPeriodUsage,
    OperatorKey,
    Tariff,
)


class ReadOnlyMixin:
    """Viewable, but no add, change or delete: for ModelAdmins and inlines alike."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class CreatedThroughApiMixin:
    """Made through the API (which validates them), kept for the records they explain."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Account)
class AccountAdmin(CreatedThroughApiMixin, admin.ModelAdmin):
    list_display = ["id", "name", "currency", "timezone", "billing_period", "closed_until"]
    list_filter = ["currency", "billing_period", "cut_off", "created_at"]
    search_fields = ["=id", "name"]
    date_hierarchy = "created_at"
    fields = [
        "id",
        "name",
        "currency",
        "timezone",
        "billing_period",
        "closed_until",
        "created_at",
        "credited",
        "consumed",
        "cutoff_at",
        "cut_off",
    ]
    # Only the name: the rest decides how charges are priced and periods fall, or is kept
    # by credit control (the cut-off line through the API, which cuts off or restores).
    readonly_fields = [field for field in fields if field != "name"]


@admin.register(Credit)
class CreditAdmin(admin.ModelAdmin):
    """The credit ledger. An operator may credit an account here (through the same service
    as the API, so the balance, a cut-off and balance alerts follow); an entry once made
    never changes."""

    list_display = ["id", "account", "amount", "balance_after", "description", "created_at"]
    list_filter = ["created_at"]
    search_fields = ["=id", "=account__id", "idempotency_key"]
    list_select_related = ["account"]
    raw_id_fields = ["account"]
    date_hierarchy = "created_at"
    fields = ["account", "amount", "description"]
    readonly_fields: list[str] = []

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return []
        return ["id", "account", "amount", "description", "idempotency_key", "balance_after"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return self.fields if obj is None else self.get_readonly_fields(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Credit, form: Any, change: bool) -> None:
        outcome = credit_add(
            account_id=obj.account_id,
            amount=obj.amount,
            description=obj.description,
            idempotency_key=new_id("admin"),
        )
        obj.pk, obj.balance_after = outcome.credit.pk, outcome.credit.balance_after


@admin.register(Alert)
class AlertAdmin(CreatedThroughApiMixin, admin.ModelAdmin):
    """Alerts, made through the API; when each last fired."""

    list_display = ["id", "account", "kind", "threshold", "meter", "last_fired_at", "armed"]
    list_filter = ["kind", "last_fired_at"]
    search_fields = ["=id", "=account__id"]
    list_select_related = ["account", "meter"]
    fields = ["id", "account", "kind", "threshold", "meter", "created_at", "last_fired_at"]
    readonly_fields = fields


@admin.register(AccountMember)
class AccountMemberAdmin(admin.ModelAdmin):
    """Who may sign in to an account's dashboard; users with the view permission on accounts
    (and superusers) see every account anyway, staff alone do not."""

    list_display = ["user", "account", "created_at"]
    search_fields = ["user__username", "=account__id", "account__name"]
    raw_id_fields = ["user", "account"]


@admin.register(Tariff)
class TariffAdmin(CreatedThroughApiMixin, admin.ModelAdmin):
    list_display = ["id", "name", "model", "currency", "unit", "billing_period", "created_at"]
    list_filter = ["model", "currency", "billing_period", "created_at"]
    search_fields = ["=id", "name"]
    date_hierarchy = "created_at"
    fields = [
        "id",
        "name",
        "model",
        "currency",
        "unit",
        "billing_period",
        "params",
        "fixed_fee",
        "minimum",
        "created_at",
    ]
    # Charges were rated on these prices; a new price is a new tariff.
    readonly_fields = [f for f in fields if f != "name"]


class RevokedFilter(admin.SimpleListFilter):
    title = "revoked"
    parameter_name = "revoked"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Revoked"), ("no", "In use")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() in ("yes", "no"):
            return queryset.filter(revoked_at__isnull=self.value() == "no")
        return queryset


@admin.register(OperatorKey)
class OperatorKeyAdmin(admin.ModelAdmin):
    """Listed and revoked here; made with `manage.py create_api_key`, which prints the key once."""

    list_display = ["name", "created_at", "revoked_at"]
    list_filter = [RevokedFilter, "created_at"]
    search_fields = ["name"]
    fields = ["name", "created_at", "revoked_at"]
    readonly_fields = ["name", "created_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoked keys stay, as the record of who could use the API when

    @admin.action(description="Revoke the selected keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[OperatorKey]) -> None:
        count = operator_keys_revoke(keys=queryset, at=timezone.now())
        self.message_user(request, f"Revoked {count} key(s).", messages.SUCCESS)


@admin.register(MeterPeriodUsage)
class MeterPeriodUsageAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["meter", "account", "period_start", "period_end", "usage", "amount"]
    list_filter = ["account", "period_start"]
    search_fields = ["=meter__id", "=account__id", "meter__name"]
    list_select_related = ["meter", "account"]
    date_hierarchy = "period_start"


@admin.register(Charge)
class ChargeAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "account",
        "meter",
        "device_reading_id",
        "quantity",
        "amount",
        "currency",
        "late",
        "rated_at",
    ]
    list_filter = ["late", "currency", "account", "meter", "rated_at"]
    search_fields = ["=id", "=account__id", "=meter__id", "reading__reading_id"]
    list_select_related = ["account", "meter", "reading"]
    date_hierarchy = "rated_at"

    @admin.display(ordering="reading__reading_id", description="reading id")
    def device_reading_id(self, charge: Charge) -> str:
        return charge.reading.reading_id


class InvoiceLineInline(ReadOnlyMixin, admin.TabularInline):
    model = InvoiceLine
    fields = ["position", "kind", "meter", "description", "quantity", "amount"]
    readonly_fields = fields
    extra = 0


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "account",
        "period_start",
        "period_end",
        "status",
        "currency",
        "subtotal",
        "total",
        "created_at",
    ]
    list_filter = ["status", "currency", "account", "period_start"]
    search_fields = ["=id", "=account__id", "account__name"]
    list_select_related = ["account"]
    date_hierarchy = "period_start"
    inlines = [InvoiceLineInline]
