"""Meters, the tariffs assigned to them over time, and the readings they sent."""

from functools import partial

from django.db import models

from billing.fields import ExactDecimalField
from billing.keys import new_id
from billing.models import QUANTITY, Account, Tariff


class Meter(models.Model):
    class Kind(models.TextChoices):
        DELTA = "delta"
        CUMULATIVE = "cumulative"

    id = models.CharField(primary_key=True, max_length=32, default=partial(new_id, "mtr"))
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="meters")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # A cumulative register wraps to 0 on reaching this value (None: never wraps).
    rollover_at = ExactDecimalField(null=True, blank=True, **QUANTITY)
    active = models.BooleanField(default=True)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Cumulative meters: the register of the latest reading, the baseline for the next.
    last_value = ExactDecimalField(null=True, blank=True, **QUANTITY)
    last_ts = models.DateTimeField(null=True, blank=True)
    # The device connection currently open, if any ("" when offline), and the
    # web process holding it (metering/presence.py: offline when that process dies).
    connection = models.CharField(max_length=200, blank=True, default="")
    connection_process = models.CharField(max_length=100, blank=True, default="")

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


class WebProcess(models.Model):
    """A web process that holds device connections, and when it last said it was alive."""

    id = models.CharField(primary_key=True, max_length=100)
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.id


class MeterTariff(models.Model):
    """The tariff a meter is rated on from `effective_from` until the next assignment."""

    meter = models.ForeignKey(Meter, on_delete=models.CASCADE, related_name="tariff_history")
    tariff = models.ForeignKey(Tariff, on_delete=models.PROTECT, related_name="+")
    effective_from = models.DateTimeField()

    class Meta:
        ordering = ["effective_from", "id"]
        indexes = [models.Index(fields=["meter", "effective_from"])]


class Reading(models.Model):
    meter = models.ForeignKey(Meter, on_delete=models.PROTECT, related_name="readings")
    reading_id = models.CharField(max_length=64)
    ts = models.DateTimeField()
    # Usage the reading stands for: the delta meter's quantity, or the
    # cumulative meter's increase over the previous register.
    quantity = ExactDecimalField(**QUANTITY)
    value = ExactDecimalField(null=True, blank=True, **QUANTITY)
    received_at = models.DateTimeField()

    class Meta:
        constraints = [
            # The idempotency key of the device protocol: never charged twice.
            models.UniqueConstraint(fields=["meter", "reading_id"], name="one_reading_per_id")
        ]
