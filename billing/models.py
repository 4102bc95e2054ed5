"""Billing records: accounts, tariffs, access keys, charges and running totals."""

from decimal import Decimal
from functools import partial

from django.conf import settings
from django.db import models
from django.utils import timezone

from billing.fields import ExactDecimalField
from billing.keys import new_id

# Amounts of charges and totals: 6 places, exact on every database (summed
# in Python: SQLite would sum them as floats).
MONEY = {"max_digits": 30, "decimal_places": 6}
# Usage: 21 digits before the point, 9 after (readings are checked to fit).
QUANTITY = {"max_digits": 30, "decimal_places": 9}
# A period's exact, unrounded price: usage (9 places) times prices (up to 12
# places, tier boundaries too) needs 24 places and ~40 digits before the point.
EXACT_PRICE = {"max_digits": 65, "decimal_places": 24}


class Account(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=partial(new_id, "acc"))
    name = models.CharField(max_length=200)
    currency = models.CharField(max_length=3)
    timezone = models.CharField(max_length=64, default="UTC")
    # The length of the account's billing periods: that of its meters' tariffs,
    # which must agree (set by the first meter). See billing/periods.py.
    billing_period = models.CharField(max_length=16, default="month")
    # The end of the last invoiced period: readings dated before it are late.
    closed_until = models.DateTimeField(null=True, blank=True)
    # The number of the last dashboard event: see DashboardConsumer.
    event_seq = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    # Credit control (CONTRACT.md section 6): devices are told `cutoff` when a charge takes
    # the balance to or below `cutoff_at` (None: never), and `cut_off` stays set, under
    # the account's lock, until a credit lifts the balance above it again.
    cutoff_at = ExactDecimalField(null=True, blank=True, **MONEY)
    cut_off = models.BooleanField(default=False)
    # The prepaid balance is credited - consumed; consumed sums the charges rated since
    # the first credit (credit_since; None: a postpaid account, no balance). Both are
    # kept under the account's lock, by the credit and by each rating batch.
    credited = ExactDecimalField(default=Decimal(0), **MONEY)
    consumed = ExactDecimalField(default=Decimal(0), **MONEY)
    credit_since = models.DateTimeField(null=True, blank=True)
    # Set by the account's first alert: rating looks for alerts only where there are some.
    has_alerts = models.BooleanField(default=False)

    @property
    def balance(self) -> Decimal:
        return self.credited - self.consumed

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


class Tariff(models.Model):
    class PricingModel(models.TextChoices):
        PER_UNIT = "per_unit"
        GRADUATED = "graduated"
        VOLUME = "volume"
        PACKAGE = "package"
        TIME_OF_USE = "time_of_use"

    id = models.CharField(primary_key=True, max_length=32, default=partial(new_id, "trf"))
    name = models.CharField(max_length=200)
    currency = models.CharField(max_length=3)
    unit = models.CharField(max_length=32, default="unit")
    billing_period = models.CharField(max_length=16, default="month")
    model = models.CharField(max_length=16, choices=PricingModel.choices)
    # The model's own fields (unit_price, tiers, ...) as the API received
    # them, decimal strings included; billing/tariffs.py makes them a pricing model.
    params = models.JSONField(default=dict)
    fixed_fee = ExactDecimalField(default=Decimal(0), **MONEY)
    minimum = ExactDecimalField(default=Decimal(0), **MONEY)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


class OperatorKey(models.Model):
    name = models.CharField(max_length=200)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name


class DashboardKey(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="dashboard_keys")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)


class MeterPeriodUsage(models.Model):
    """A meter's running usage and amount in one billing period.

    Updated in the same transaction as the charges it sums, under the meter's
    row lock, so it always equals the sum of the period's charges.
    """

    meter = models.ForeignKey("metering.Meter", on_delete=models.CASCADE, related_name="periods")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="meter_periods")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    usage = ExactDecimalField(default=Decimal(0), **QUANTITY)
    exact_amount = ExactDecimalField(default=Decimal(0), **EXACT_PRICE)
    amount = ExactDecimalField(default=Decimal(0), **MONEY)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["meter", "period_start"], name="one_usage_per_period")
        ]
        indexes = [models.Index(fields=["account", "period_start"])]


class Charge(models.Model):
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="charges")
    meter = models.ForeignKey("metering.Meter", on_delete=models.PROTECT, related_name="charges")
    reading = models.OneToOneField(
        "metering.Reading", on_delete=models.PROTECT, related_name="charge"
    )
    tariff = models.ForeignKey(Tariff, on_delete=models.PROTECT, related_name="charges")
    period_start = models.DateTimeField()
    quantity = ExactDecimalField(**QUANTITY)
    amount = ExactDecimalField(**MONEY)
    currency = models.CharField(max_length=3)
    rated_at = models.DateTimeField()
    # Dated in a period already invoiced, so charged in the open one instead.
    late = models.BooleanField(default=False)
    # How the amount came about: [{"description", "quantity", "unit_price", "amount"}],
    # decimal strings, one per tier crossed, repricing or band; they add up to `amount`.
    lines = models.JSONField(default=list)

    class Meta:
        indexes = [
            models.Index(fields=["account", "id"]),
            models.Index(fields=["meter", "id"]),
        ]


class Invoice(models.Model):
    """A closed billing period, frozen: finalized invoices never change."""

    class Status(models.TextChoices):
        FINALIZED = "finalized"

    id = models.CharField(primary_key=True, max_length=32, default=partial(new_id, "inv"))
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="invoices")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.FINALIZED)
    currency = models.CharField(max_length=3)
    subtotal = ExactDecimalField(**MONEY)
    total = ExactDecimalField(**MONEY)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # Two closers racing make one invoice: the second insert fails.
            models.UniqueConstraint(
                fields=["account", "period_start"], name="one_invoice_per_period"
            )
        ]
        ordering = ["account", "period_start"]

    def __str__(self) -> str:
        return f"{self.id} ({self.account_id}, {self.period_start:%Y-%m-%d})"


class InvoiceLine(models.Model):
    class Kind(models.TextChoices):
        USAGE = "usage"
        FIXED_FEE = "fixed_fee"
        MINIMUM = "minimum"

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    meter = models.ForeignKey(
        "metering.Meter", on_delete=models.PROTECT, null=True, related_name="+"
    )
    # Made of a meter's and a tariff's names (200 characters each) and more.
    description = models.TextField()
    quantity = ExactDecimalField(**QUANTITY)
    amount = ExactDecimalField(**MONEY)

    class Meta:
        ordering = ["invoice", "position"]


class AccountMember(models.Model):
    """A user who may sign in and watch the account's dashboard (users with the view permission
    on accounts, and superusers, see every account)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="members")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "account"], name="one_membership_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.account_id}"


class Event(models.Model):
    """Something a transaction decided (an alert fired, a balance ran out, an invoice was
    made), written in that same transaction: the outbox.

    Once the transaction commits, the event is told to whoever listens (dashboards,
    device connections: `published_at`) and handed to the webhook endpoints that
    subscribed to its type (`fanned_out_at`). A transaction rolled back leaves no
    event; a process that dies between commit and telling leaves the event for a
    sweeper, which tells it again: at least once, each with its `public_id` to
    dedupe on (the `webhook-id` of its deliveries).
    """

    class Type(models.TextChoices):
        ALERT_TRIGGERED = "alert.triggered"
        BALANCE_DEPLETED = "balance.depleted"
        BALANCE_RESTORED = "balance.restored"
        INVOICE_FINALIZED = "invoice.finalized"
        METER_OFFLINE = "meter.offline"
        CHARGING_SESSION_COMPLETED = "charging_session.completed"

    # Ascending in commit order within an account (its events are written under its lock).
    id = models.BigAutoField(primary_key=True)
    public_id = models.CharField(max_length=32, unique=True, default=partial(new_id, "evt"))
    type = models.CharField(max_length=40, choices=Type.choices)
    account = models.ForeignKey(
        Account, on_delete=models.CASCADE, null=True, blank=True, related_name="events"
    )
    # The event's own fields, JSON-ready: money and quantities as decimal strings.
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    published_at = models.DateTimeField(null=True, blank=True)
    fanned_out_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The sweepers look for what is left, which is almost nothing.
            models.Index(
                fields=["id"],
                name="event_unpublished",
                condition=models.Q(published_at__isnull=True),
            ),
            models.Index(
                fields=["id"],
                name="event_not_fanned_out",
                condition=models.Q(fanned_out_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.public_id}"


class Credit(models.Model):
    """An entry of an account's credit ledger: money paid in, never changed once made."""

    id = models.CharField(primary_key=True, max_length=32, default=partial(new_id, "crd"))
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="credits")
    amount = ExactDecimalField(**MONEY)
    description = models.CharField(max_length=200, blank=True, default="")
    # The caller's key for this credit: the same key again is the same entry.
    idempotency_key = models.CharField(max_length=200)
    balance_after = ExactDecimalField(**MONEY)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "idempotency_key"], name="one_credit_per_idempotency_key"
            )
        ]
        ordering = ["account", "created_at", "id"]

    def __str__(self) -> str:
        return f"{self.id} ({self.account_id}, {self.amount})"


class Alert(models.Model):
    """A threshold on an account's (or a meter's) open period or on its balance, decided
    in the rating transaction of the charge that crosses it (billing/credit.py)."""

    class Kind(models.TextChoices):
        SPEND_ABOVE = "spend_above"
        USAGE_ABOVE = "usage_above"
        BALANCE_BELOW = "balance_below"

    id = models.CharField(primary_key=True, max_length=32, default=partial(new_id, "alr"))
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    threshold = ExactDecimalField(**QUANTITY)
    meter = models.ForeignKey(
        "metering.Meter", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_fired_at = models.DateTimeField(null=True, blank=True)
    # spend_above, usage_above: the period they last fired in (once per period).
    fired_period_start = models.DateTimeField(null=True, blank=True)
    # balance_below: fires when armed; a credit that lifts the balance above re-arms it.
    armed = models.BooleanField(default=True)

    class Meta:
        ordering = ["account", "created_at", "id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.threshold} ({self.account_id})"
