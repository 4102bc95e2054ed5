"""Writes for charge points: sessions started and completed, what came for transactions
Meterline does not know, connector statuses, RemoteStopTransaction asked and answered,
and the id tags drivers authorize with.

A completed session's `charging_session.completed` event is written in the transaction
that completes it (the outbox, billing/outbox.py), under the account's lock as every
event of an account is.
"""

from datetime import datetime
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from billing.models import Account, Event
from billing.outbox import event_record
from metering.api.serializers import ChargingSessionOut
from metering.models import ChargingSession, ConnectorStatus, IdTag, UnknownTransactionMessage
from metering.ocpp.selectors import (
    INVALID,
    ChargePoint,
    SessionRef,
    id_tag_status,
    session_totals,
)
from protocol import meter_group

# A StartTransaction on a connector whose session never stopped ends that session.
SUPERSEDED = "Superseded"
MAX_BIGINT = 2**63 - 1


class NotStoppable(Exception):
    """The session cannot be stopped from here (completed, or its charge point is offline)."""


def transaction_start(
    *,
    charge_point: ChargePoint,
    connector_id: int,
    id_tag: str,
    meter_start_wh: int,
    started_at: datetime,
) -> SessionRef:
    """The session of a StartTransaction: the one made when it was first sent, else a new one.

    Billed unless its id tag is unknown to the account, or another connector of the
    charge point has a billed session running: the meter keeps one register, and
    two sessions' registers interleaved in it would bill neither right.
    """
    start = {
        "meter_id": charge_point.meter_id,
        "connector_id": connector_id,
        "id_tag": id_tag,
        "started_at": started_at,
        "meter_start_wh": meter_start_wh,
    }
    if (found := ChargingSession.objects.filter(**start).first()) is not None:
        return _ref(found)
    status = id_tag_status(account_id=charge_point.account_id, id_tag=id_tag)
    with transaction.atomic():
        Account.objects.select_for_update().get(pk=charge_point.account_id)
        active = ChargingSession.objects.filter(
            meter_id=charge_point.meter_id, status=ChargingSession.Status.ACTIVE
        )
        for stale in active.filter(connector_id=connector_id):
            _complete(stale, stopped_at=started_at, meter_stop_wh=None, reason=SUPERSEDED)
        concurrent = active.filter(billed=True).exclude(connector_id=connector_id).exists()
        fields = {"account_id": charge_point.account_id, "id_tag_status": status}
        session = _session_create(start, billed=status != INVALID and not concurrent, **fields)
    return _ref(session)


def _session_create(start: dict[str, Any], **fields: Any) -> ChargingSession:
    """A new session with the next transaction id; a resend racing it finds its session."""
    for _ in range(5):
        last = ChargingSession.objects.aggregate(last=Max("transaction_id"))["last"] or 0
        try:
            with transaction.atomic():
                return ChargingSession.objects.create(transaction_id=last + 1, **start, **fields)
        except IntegrityError:
            found = ChargingSession.objects.filter(**start).first()
            if found is not None:
                return found
    raise IntegrityError("no free transaction id after 5 tries")


def _ref(session: ChargingSession) -> SessionRef:
    return SessionRef(session.id, session.transaction_id, session.billed, session.id_tag_status)


@transaction.atomic
def session_complete(
    *, session_id: str, stopped_at: datetime, meter_stop_wh: int | None, reason: str
) -> bool:
    """Complete the session once its last readings are committed; False if it already was."""
    account_id = ChargingSession.objects.values_list("account_id", flat=True).get(pk=session_id)
    Account.objects.select_for_update().get(pk=account_id)
    session = ChargingSession.objects.select_for_update().get(pk=session_id)
    if session.status == ChargingSession.Status.COMPLETED:
        return False
    _complete(session, stopped_at=stopped_at, meter_stop_wh=meter_stop_wh, reason=reason)
    return True


def _complete(
    session: ChargingSession, *, stopped_at: datetime, meter_stop_wh: int | None, reason: str
) -> None:
    """In a transaction holding the account's lock: the session's totals frozen, its event."""
    session.energy_kwh, session.amount = session_totals(session=session)
    session.status = ChargingSession.Status.COMPLETED
    session.stopped_at, session.meter_stop_wh = stopped_at, meter_stop_wh
    session.stop_reason = reason
    session.save()
    event_record(
        type=Event.Type.CHARGING_SESSION_COMPLETED,
        account_id=session.account_id,
        data=dict(ChargingSessionOut(session).data),
        live=False,  # for webhooks only
    )


def charging_session_rendered(*, session_id: str) -> dict[str, Any]:
    """The session as the API renders it (its running amount while active)."""
    session = ChargingSession.objects.select_related("meter", "account").get(pk=session_id)
    return dict(ChargingSessionOut(session).data)


def charging_sessions_active_rendered(*, account_id: str) -> list[dict[str, Any]]:
    """The account's active sessions as the API renders them (the dashboard page's)."""
    sessions = ChargingSession.objects.filter(
        account_id=account_id, status=ChargingSession.Status.ACTIVE
    ).select_related("meter", "account")
    return ChargingSessionOut(sessions.order_by("started_at"), many=True).data


def unknown_transaction_record(
    *, meter_id: str, transaction_id: int, action: str, payload: dict[str, Any]
) -> None:
    # An id beyond a 64-bit integer stays in the payload only.
    known = transaction_id if -MAX_BIGINT <= transaction_id <= MAX_BIGINT else None
    UnknownTransactionMessage.objects.create(
        meter_id=meter_id, transaction_id=known, action=action, payload=payload
    )


def connector_status_record(
    *, meter_id: str, connector_id: int, status: str, error_code: str, info: str, at: datetime
) -> None:
    ConnectorStatus.objects.update_or_create(
        meter_id=meter_id,
        connector_id=connector_id,
        defaults={"status": status, "error_code": error_code, "info": info, "at": at},
    )


def remote_stop_record(*, session_id: str, status: str, requested_at: datetime | None) -> None:
    """What became of a RemoteStopTransaction sent for the session (and when it was sent)."""
    changes: dict[str, Any] = {"remote_stop_status": status[:64]}
    if requested_at is not None:
        changes["remote_stop_requested_at"] = requested_at
    ChargingSession.objects.filter(pk=session_id).update(**changes)


@transaction.atomic
def charging_session_stop(*, session: ChargingSession) -> ChargingSession:
    """Ask the session's charge point to stop it (RemoteStopTransaction), through the
    connection that holds it, in whichever web process; its answer is recorded there."""
    session = ChargingSession.objects.select_for_update().select_related("meter").get(pk=session.pk)
    if session.status != ChargingSession.Status.ACTIVE:
        raise NotStoppable("the session is completed")
    if not session.meter.connection:
        raise NotStoppable("the charge point is not connected")
    session.remote_stop_requested_at, session.remote_stop_status = timezone.now(), "Requested"
    session.save(update_fields=["remote_stop_requested_at", "remote_stop_status"])
    message = {
        "type": "ocpp.remote_stop",
        "session": session.id,
        "transaction": session.transaction_id,
    }

    def send() -> None:
        async_to_sync(get_channel_layer().group_send)(meter_group(session.meter_id), message)

    transaction.on_commit(send, robust=True)
    return session


def id_tag_create(*, account: Account, id_tag: str) -> IdTag:
    if IdTag.objects.filter(account=account, id_tag__iexact=id_tag).exists():
        raise ValidationError({"id_tag": ["the account has this id tag already"]})
    try:
        with transaction.atomic():
            return IdTag.objects.create(account=account, id_tag=id_tag)
    except IntegrityError:  # made meanwhile by a racing request
        raise ValidationError({"id_tag": ["the account has this id tag already"]}) from None


def id_tag_update(*, tag: IdTag, active: bool | None = None) -> IdTag:
    if active is not None:
        tag.active = active
        tag.save(update_fields=["active"])
    return tag
