"""Reads of meter state for the operator API."""

from datetime import datetime

from metering.models import Meter


def meter_tariff_id(*, meter: Meter, at: datetime) -> str | None:
    """The id of the tariff the meter is rated on at `at` (None before its first assignment)."""
    return (
        meter.tariff_history.filter(effective_from__lte=at)
        .order_by("-effective_from", "-id")
        .values_list("tariff_id", flat=True)
        .first()
    )
