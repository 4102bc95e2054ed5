"""Credit control's events: what they hold, and how each is told once it has committed.

An event is an outbox row (billing.models.Event) written in the transaction that
decided it. After the commit it is told live: an alert to the account's dashboards,
a cut-off or a restore to every device connection of the account (whichever web
process holds it; OCPP charge points stop their sessions), then marked told. A
process that dies before telling leaves it to the sweeper (`outbox_sweep`), so each
is told at least once, with its id (`"id"`: the event's public id) to dedupe on.
"""

import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from billing.credit import Fired
from billing.models import Event
from billing.money import format_amount
from billing.outbox import events_told, events_untold
from billing.periods import isoformat
from project.metrics import ALERTS_FIRED_BY_KIND, LAYER_GROUP_SEND_ERRORS
from protocol import account_devices_group, account_group, cutoff_message

logger = logging.getLogger(__name__)


def alert_event(*, account_id: str, fired: Fired, at: datetime) -> Event:
    alert = fired.alert
    return Event(
        type=Event.Type.ALERT_TRIGGERED,
        account_id=account_id,
        created_at=at,
        data={
            "account": account_id,
            "alert": alert.id,
            "kind": alert.kind,
            "threshold": f"{alert.threshold.normalize():f}",
            "value": f"{fired.value:f}",
            "meter": alert.meter_id,
            "period_start": isoformat(fired.period_start),
            "fired_at": isoformat(at),
        },
    )


def balance_event(*, account_id: str, depleted: bool, balance: Decimal, at: datetime) -> Event:
    """balance.depleted (the cut-off) or balance.restored."""
    kind = Event.Type.BALANCE_DEPLETED if depleted else Event.Type.BALANCE_RESTORED
    data = {"account": account_id, "balance": format_amount(balance), "at": isoformat(at)}
    if depleted:
        data["reason"] = cutoff_message(balance=data["balance"])["reason"]
    return Event(type=kind, account_id=account_id, created_at=at, data=data)


def live_messages(event: Event) -> list[tuple[str, dict[str, Any]]]:
    """(group, channel-layer message) pairs that tell an event to its live listeners."""
    data, account = event.data, event.account_id
    if event.type == Event.Type.ALERT_TRIGGERED:
        alert = {"type": "alert", "id": event.public_id}
        alert |= {key: data[key] for key in ("alert", "kind", "threshold", "value", "meter")}
        alert["fired_at"] = data["fired_at"]
        return [(account_group(account), {"type": "dashboard.events", "events": [alert]})]
    if event.type in (Event.Type.BALANCE_DEPLETED, Event.Type.BALANCE_RESTORED):
        depleted = event.type == Event.Type.BALANCE_DEPLETED
        shown = {"type": "balance", "id": event.public_id, "balance": data["balance"]}
        dashboards = {"type": "dashboard.events", "events": [shown | {"cut_off": depleted}]}
        if depleted:
            devices = {
                "type": "account.cutoff",
                "event": event.public_id,
                "balance": data["balance"],
            }
        else:
            devices = {"type": "account.restore", "event": event.public_id}
        return [(account_devices_group(account), devices), (account_group(account), dashboards)]
    return []


def outbox_publish(events: list[Event]) -> None:
    """Tell committed events to their live listeners, then mark them told.

    An event whose telling failed stays untold, for the sweeper to tell again.
    """
    told = []
    for event in events:
        try:
            for group, message in live_messages(event):
                async_to_sync(get_channel_layer().group_send)(group, message)
        except Exception:
            LAYER_GROUP_SEND_ERRORS.inc()
            logger.warning(
                "event %s was not told; the sweeper tells it again",
                event.public_id,
                exc_info=True,
                extra={"account": event.account_id},
            )
            continue
        told.append(event)
    events_told(told)


def alerts_counted(events: list[Event]) -> None:
    """Count fired alerts in /metrics (at commit)."""
    for event in events:
        if event.type == Event.Type.ALERT_TRIGGERED:
            ALERTS_FIRED_BY_KIND[event.data["kind"]].inc()


def outbox_sweep() -> int:
    """Tell what a dead process left untold (the beat task); how many events."""
    events = events_untold()
    outbox_publish(events)
    return len(events)
