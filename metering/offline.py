"""A meter going offline: its connection cleared and the `meter.offline` event written,
in one transaction, so a webhook says so exactly when the database does.

The account is locked first (as rating does, accounts before meters): an account's
events get ascending ids in commit order, which keeps webhook deliveries in order.
"""

from django.db import transaction

from billing.models import Account, Event
from billing.outbox import event_record
from metering.models import Meter

# Why a meter went offline (`reason` in the event's data).
DISCONNECTED = "disconnected"
PROCESS_LOST = "process_lost"


def meter_offline_mark(*, meter_id: str, channel_name: str, reason: str) -> str | None:
    """Mark the meter offline if `channel_name` is still its connection, with its event;
    returns its account's id if it went offline, None if another connection holds it."""
    account_id = (
        Meter.objects.filter(pk=meter_id, connection=channel_name)
        .values_list("account_id", flat=True)
        .first()
    )
    if account_id is None:
        return None
    with transaction.atomic():
        Account.objects.select_for_update().filter(pk=account_id).values_list("pk").first()
        if not Meter.objects.filter(pk=meter_id, connection=channel_name).update(connection=""):
            return None
        event_record(
            type=Event.Type.METER_OFFLINE,
            account_id=account_id,
            data={"account": account_id, "meter": meter_id, "reason": reason},
            live=False,  # dashboards hear of it by their own road (meter_status)
        )
    return account_id
