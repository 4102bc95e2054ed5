"""Which device connection a meter has open, for the dashboards' online dots."""

from metering.models import Meter


def meter_connection_open(*, meter_id: str, channel_name: str) -> None:
    Meter.objects.filter(pk=meter_id).update(connection=channel_name)


def meter_connection_close(*, meter_id: str, channel_name: str) -> bool:
    """Mark the meter offline if this was its current connection; True if it was."""
    return bool(Meter.objects.filter(pk=meter_id, connection=channel_name).update(connection=""))
