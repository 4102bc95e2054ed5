"""Which device connection a meter has open, and in which web process, for the online dots
(and the `meter.offline` webhook event when it closes: metering/offline.py)."""

from django.db import transaction

from metering.models import Meter
from metering.offline import DISCONNECTED, meter_offline_mark
from metering.presence import PROCESS_ID, web_presence_start


def meter_connection_open(*, meter_id: str, channel_name: str) -> str:
    """Make this the meter's connection, held by this web process (whose presence is
    kept from now on, see metering/presence.py); returns the one it replaces ("" if none)."""
    web_presence_start()
    with transaction.atomic():
        meter = Meter.objects.select_for_update().only("connection").get(pk=meter_id)
        previous, meter.connection = meter.connection, channel_name
        meter.connection_process = PROCESS_ID
        meter.save(update_fields=["connection", "connection_process"])
    return previous if previous != channel_name else ""


def meter_connection_close(*, meter_id: str, channel_name: str) -> bool:
    """Mark the meter offline if this was its current connection; True if it was."""
    offline = meter_offline_mark(meter_id=meter_id, channel_name=channel_name, reason=DISCONNECTED)
    return offline is not None
