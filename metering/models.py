"""Meters, the tariffs assigned to them over time, and the readings they sent; for EV
charge points (OCPP 1.6-J, metering/ocpp/) also the id tags drivers start with, the
charging sessions and the connectors' last status."""

from functools import partial

from django.db import models
from django.db.models.functions import Upper
from django.utils import timezone

from billing.fields import ExactDecimalField
from billing.keys import new_id
from billing.models import MONEY, QUANTITY, Account, Tariff


class Meter(models.Model):
    class Kind(models.TextChoices):
        DELTA = "delta"
        CUMULATIVE = "cumulative"
        # An EV charge point speaking OCPP 1.6-J at /ocpp/<charge_point_id>: its
        # Energy.Active.Import.Register is a cumulative register, reset to each
        # session's meterStart (metering/ocpp/readings.py).
        OCPP = "ocpp"

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
    # OCPP meters only (None otherwise): the identity it connects with, its HTTP Basic user.
    charge_point_id = models.CharField(max_length=48, unique=True, null=True, blank=True)

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


# --- EV charge points (OCPP 1.6-J, CONTRACT.md section 8) ----------------------------


class IdTag(models.Model):
    """An RFID card or app token a driver authorizes with at the account's charge points."""

    id = models.CharField(primary_key=True, max_length=32, default=partial(new_id, "tag"))
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="id_tags")
    # OCPP's IdToken: printable ASCII, at most 20 characters, compared case-insensitively.
    id_tag = models.CharField(max_length=20)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(Upper("id_tag"), "account", name="one_id_tag_per_account")
        ]

    def __str__(self) -> str:
        return f"{self.id_tag} ({self.account_id})"


class ChargingSession(models.Model):
    """One OCPP transaction: from StartTransaction to StopTransaction on a connector.

    Its readings are the meter's readings whose ids start with `tx<transaction_id>-`
    (metering/ocpp/readings.py); energy and amount are summed from their charges,
    and kept here once the session is completed.
    """

    class Status(models.TextChoices):
        ACTIVE = "active"
        COMPLETED = "completed"

    id = models.CharField(primary_key=True, max_length=32, default=partial(new_id, "chs"))
    meter = models.ForeignKey(Meter, on_delete=models.PROTECT, related_name="charging_sessions")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="charging_sessions")
    # OCPP's transactionId: unique, positive, within a 32-bit integer as charge points keep it.
    transaction_id = models.PositiveIntegerField(unique=True)
    connector_id = models.PositiveIntegerField()
    id_tag = models.CharField(max_length=20)
    # What the id tag was at the start (Accepted, Blocked, Invalid). A tag the account
    # does not know (Invalid) is not billed: nobody the account knows started it.
    id_tag_status = models.CharField(max_length=16)
    billed = models.BooleanField()
    started_at = models.DateTimeField()
    meter_start_wh = models.BigIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    stopped_at = models.DateTimeField(null=True, blank=True)
    meter_stop_wh = models.BigIntegerField(null=True, blank=True)
    stop_reason = models.CharField(max_length=32, blank=True, default="")
    # Summed from the session's charges when it completes (None while active).
    energy_kwh = ExactDecimalField(null=True, blank=True, **QUANTITY)
    amount = ExactDecimalField(null=True, blank=True, **MONEY)
    # The last RemoteStopTransaction sent (an operator's stop or a cut-off) and the
    # charge point's answer: Accepted, Rejected, or what went wrong.
    remote_stop_requested_at = models.DateTimeField(null=True, blank=True)
    remote_stop_status = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # What identifies a StartTransaction: the same one resent after a reconnect
            # finds this row, and gets its transactionId again.
            models.UniqueConstraint(
                fields=["meter", "connector_id", "id_tag", "started_at", "meter_start_wh"],
                name="one_session_per_start",
            )
        ]
        indexes = [
            models.Index(fields=["account", "started_at"]),
            models.Index(fields=["meter", "status"]),
        ]

    def __str__(self) -> str:
        return f"transaction {self.transaction_id} ({self.id})"


class ConnectorStatus(models.Model):
    """The last StatusNotification of a charge point's connector (0: the charge point)."""

    meter = models.ForeignKey(Meter, on_delete=models.CASCADE, related_name="connector_statuses")
    connector_id = models.PositiveIntegerField()
    status = models.CharField(max_length=32)
    error_code = models.CharField(max_length=32)
    info = models.CharField(max_length=50, blank=True, default="")
    at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["meter", "connector_id"], name="one_status_per_connector"
            )
        ]


class UnknownTransactionMessage(models.Model):
    """A MeterValues or StopTransaction for a transactionId Meterline never gave this charge
    point (-1 included): kept for the operator, answered normally, charged nothing."""

    meter = models.ForeignKey(Meter, on_delete=models.CASCADE, related_name="+")
    transaction_id = models.BigIntegerField(null=True)  # None: beyond a 64-bit integer
    action = models.CharField(max_length=32)
    payload = models.JSONField()
    received_at = models.DateTimeField(default=timezone.now)


# --- Dashboards -------------------------------------------------------------------------


class DashboardEventBatch(models.Model):
    """The charge events one rating batch numbered for an account's dashboards (seq
    `first_seq` to `last_seq`, in order), written in that batch's transaction and kept
    for METERLINE_DASHBOARD_EVENTS_KEEP_SECONDS, so that a dashboard that missed some
    (the channel layer delivers at most once) reads them here (metering/event_log.py)."""

    # No index of its own: the unique constraint's (account, last_seq) leads with it.
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+", db_index=False)
    first_seq = models.BigIntegerField()
    last_seq = models.BigIntegerField()
    events = models.JSONField()  # as sent to dashboards
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            # Also the index a dashboard's catch-up reads: the account's batches by seq.
            models.UniqueConstraint(
                fields=["account", "last_seq"], name="one_event_batch_per_account_seq"
            )
        ]
        indexes = [models.Index(fields=["created_at"], name="event_batch_created")]
