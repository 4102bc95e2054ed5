"""Reads for charge points: who is connecting, what an id tag may do, and a session's
energy and amount, summed from the charges of its readings."""

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import QuerySet

from billing.keys import secret_hash
from billing.models import Account, Charge
from metering.models import ChargingSession, IdTag, Meter, Reading
from metering.ocpp.readings import reading_prefix

ACCEPTED, BLOCKED, INVALID = "Accepted", "Blocked", "Invalid"
# What the database's 32-bit transaction id column can hold: anything else is unknown.
MAX_TRANSACTION_ID = 2**31 - 1


@dataclass(frozen=True)
class ChargePoint:
    """The meter a charge point's connection speaks for."""

    meter_id: str
    account_id: str
    charge_point_id: str
    active: bool


@dataclass(frozen=True)
class SessionRef:
    """What a connection keeps of a session between messages."""

    id: str
    transaction_id: int
    billed: bool
    id_tag_status: str


def charge_point_for_credentials(*, charge_point_id: str, password: str) -> ChargePoint | None:
    """The OCPP meter whose id and token these are (HTTP Basic, security profile 1)."""
    meter = (
        Meter.objects.filter(
            token_hash=secret_hash(password),
            kind=Meter.Kind.OCPP,
            charge_point_id=charge_point_id,
        )
        .values("id", "account_id", "charge_point_id", "active")
        .first()
    )
    if meter is None:
        return None
    return ChargePoint(meter["id"], meter["account_id"], meter["charge_point_id"], meter["active"])


def id_tag_status(*, account_id: str, id_tag: str) -> str:
    """Authorize's answer: Accepted for an active tag of the account, Blocked for an
    inactive one or while the account is cut off, Invalid for a tag it does not have."""
    tag = IdTag.objects.filter(account_id=account_id, id_tag__iexact=id_tag).first()
    if tag is None:
        return INVALID
    if not tag.active or account_cut_off(account_id=account_id):
        return BLOCKED
    return ACCEPTED


def account_cut_off(*, account_id: str) -> bool:
    return Account.objects.filter(pk=account_id, cut_off=True).exists()


def session_find(*, meter_id: str, transaction_id: int) -> SessionRef | None:
    """The charge point's session of this transaction id, if Meterline gave it one."""
    if not 0 < transaction_id <= MAX_TRANSACTION_ID:
        return None
    session = ChargingSession.objects.filter(meter_id=meter_id, transaction_id=transaction_id)
    row = session.values("id", "transaction_id", "billed", "id_tag_status").first()
    return SessionRef(**row) if row else None


def sessions_active(*, meter_id: str) -> list[SessionRef]:
    sessions = ChargingSession.objects.filter(
        meter_id=meter_id, status=ChargingSession.Status.ACTIVE
    ).order_by("started_at", "transaction_id")
    return [
        SessionRef(**row)
        for row in sessions.values("id", "transaction_id", "billed", "id_tag_status")
    ]


def session_totals(*, session: ChargingSession) -> tuple[Decimal, Decimal]:
    """(energy in kWh, amount) charged for the session's readings so far.

    The charges are found from the one of its baseline reading on, through the
    index of a meter's charges by id, so the cost is the session's, not the meter's history.
    """
    if session.status == ChargingSession.Status.COMPLETED and session.amount is not None:
        return session.energy_kwh, session.amount
    prefix = reading_prefix(session.transaction_id)
    first = (
        Reading.objects.filter(meter_id=session.meter_id, reading_id=f"{prefix}start")
        .values_list("charge__id", flat=True)
        .first()
    )
    if first is None:  # not billed, or its baseline not yet committed
        return Decimal(0), Decimal(0)
    charges = Charge.objects.filter(
        meter_id=session.meter_id, id__gte=first, reading__reading_id__startswith=prefix
    ).values_list("quantity", "amount")
    # Summed here, not in SQL: SQLite would sum exact decimals' text as floats.
    energy, amount = Decimal(0), Decimal(0)
    for quantity, charged in charges:
        energy += quantity
        amount += charged
    return energy, amount


def charging_session_list(
    *, account: Account, status: str | None = None
) -> QuerySet[ChargingSession]:
    """The account's sessions, newest first."""
    sessions = ChargingSession.objects.filter(account=account).select_related("meter", "account")
    if status:
        sessions = sessions.filter(status=status)
    return sessions.order_by("-started_at", "-transaction_id")


def id_tag_list(*, account: Account) -> QuerySet[IdTag]:
    return IdTag.objects.filter(account=account).order_by("created_at", "id")
