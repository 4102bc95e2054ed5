"""Which device connection a meter has open, for the dashboards' online dots."""

from django.db import transaction

from metering.models import Meter


def meter_connection_open(*, meter_id: str, channel_name: str) -> str:
    """Make this the meter's connection; returns the one it replaces ("" if none)."""
    with transaction.atomic():
        meter = Meter.objects.select_for_update().only("connection").get(pk=meter_id)
        previous, meter.connection = meter.connection, channel_name
        meter.save(update_fields=["connection"])
    return previous if previous != channel_name else ""


def meter_connection_close(*, meter_id: str, channel_name: str) -> bool:
    """Mark the meter offline if this was its current connection; True if it was."""
    return bool(Meter.objects.filter(pk=meter_id, connection=channel_name).update(connection=""))
