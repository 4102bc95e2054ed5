"""Billing records: accounts, tariffs, access keys, charges and running totals."""

from functools import partial

from django.db import models

from billing.keys import new_id

MONEY = {"max_digits": 30, "decimal_places": 6}
QUANTITY = {"max_digits": 30, "decimal_places": 9}


class Account(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=partial(new_id, "acc"))
    name = models.CharField(max_length=200)
    currency = models.CharField(max_length=3)
    timezone = models.CharField(max_length=64, default="UTC")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


class Tariff(models.Model):
    class PricingModel(models.TextChoices):
        PER_UNIT = "per_unit"
        GRADUATED = "graduated"

    class BillingPeriod(models.TextChoices):
        MONTH = "month"

    id = models.CharField(primary_key=True, max_length=32, default=partial(new_id, "trf"))
    name = models.CharField(max_length=200)
    currency = models.CharField(max_length=3)
    unit = models.CharField(max_length=32, default="unit")
    billing_period = models.CharField(
        max_length=16, choices=BillingPeriod.choices, default=BillingPeriod.MONTH
    )
    model = models.CharField(max_length=16, choices=PricingModel.choices)
    # The model's own fields (unit_price, tiers, ...) as the API received
    # them, decimal strings included; billing/pricing.py turns them into Decimals.
    params = models.JSONField(default=dict)
    fixed_fee = models.DecimalField(default=0, **MONEY)
    minimum = models.DecimalField(default=0, **MONEY)
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
    usage = models.DecimalField(default=0, **QUANTITY)
    amount = models.DecimalField(default=0, **MONEY)

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
    quantity = models.DecimalField(**QUANTITY)
    amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3)
    rated_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["account", "id"]),
            models.Index(fields=["meter", "id"]),
        ]
