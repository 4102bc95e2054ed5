"""frames_rate: frames of checked readings become committed charges, exactly once.

One transaction per batch of frames (one frame, or many frames of many
meters coalesced by a web process): lock the accounts and the meters, drop
readings already recorded (the `(meter, reading id)` idempotency key), rate
the rest against the tariff in force at their timestamps, write readings,
charges and running totals. A batch costs a fixed number of queries
whatever its size: the per-reading work is arithmetic in Python.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import localcontext
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction

from billing.credit import Totals
from billing.credit_events import alerts_counted, outbox_publish
from billing.events import events_publish
from billing.models import Event
from billing.pricing import EXACT, round6
from metering.models import Meter
from metering.rating.loading import FrameIn, Loaded, batch_load
from metering.rating.step import (
    reading_age_check,
    reading_price,
    reading_usage,
    register_advance,
)
from metering.rating.writing import Rows, credit_write, events_number, rows_write
from project.metrics import readings_rated
from protocol import ReadingError, ReadingIn

__all__ = ["BatchResult", "FrameIn", "RatingResult", "frames_rate", "readings_rate"]


@dataclass
class RatingResult:
    """What became of one frame's readings."""

    ids: list[str] = field(default_factory=list)  # charged by this call
    duplicates: list[str] = field(default_factory=list)  # recorded before
    errors: list[ReadingError] = field(default_factory=list)  # refused, nothing charged


@dataclass
class BatchResult:
    frames: list[RatingResult]  # one per frame, in order
    events: dict[str, list[dict[str, Any]]]  # account id -> dashboard events, once committed
    outbox: list[Event] = field(default_factory=list)  # credit control's, to tell once committed


def frames_rate(frames: Sequence[FrameIn]) -> BatchResult:
    """Rate frames of any meters and accounts in one transaction. Safe to call twice.

    The caller publishes `events`, then tells `outbox` (billing/credit_events.py), once
    the transaction has committed.
    """
    results = [RatingResult() for _ in frames]
    with transaction.atomic():
        loaded = batch_load(frames)
        rows = Rows()
        with localcontext(EXACT):  # 30-digit usage never rounds in the default 28 digits
            for frame, result in zip(frames, results, strict=True):
                _frame_rate(loaded, rows, frame, result)
        rows_write(loaded, rows)
        outbox = credit_write(loaded)
        events = events_number(loaded, rows)
        transaction.on_commit(partial(alerts_counted, outbox), robust=True)
        # Counted at commit: a batch rolled back counts nothing, a resend counts as duplicate.
        transaction.on_commit(
            partial(
                readings_rated,
                charged=sum(len(result.ids) for result in results),
                duplicates=sum(len(result.duplicates) for result in results),
                refused=sum(len(result.errors) for result in results),
            ),
            robust=True,
        )
    return BatchResult(frames=results, events=events, outbox=outbox)


def readings_rate(*, meter_id: str, readings: Sequence[ReadingIn]) -> RatingResult:
    """Rate one frame of a meter's readings, and tell its dashboards once committed
    (HTTP ingest rates inline, in its request)."""
    batch = frames_rate([FrameIn(meter_id, readings)])
    transaction.on_commit(partial(events_publish, batch.events), robust=True)
    transaction.on_commit(partial(outbox_publish, batch.outbox), robust=True)
    return batch.frames[0]


def _frame_rate(loaded: Loaded, rows: Rows, frame: FrameIn, result: RatingResult) -> None:
    meter = loaded.meters.get(frame.meter_id)
    if meter is None or not meter.active:
        reason = "meter_unknown" if meter is None else "meter_disabled"
        detail = f"meter {frame.meter_id} is not accepting readings"
        result.errors = [ReadingError(r.id, reason, detail) for r in frame.readings]
        return
    zone = ZoneInfo(meter.account.timezone)
    oldest = meter.account.created_at - timedelta(days=settings.METERLINE_READING_MAX_AGE_DAYS)
    for reading in frame.readings:
        if (meter.id, reading.id) in loaded.recorded:
            result.duplicates.append(reading.id)
            continue
        try:
            _reading_rate(loaded, rows, meter, reading, zone, oldest)
        except ReadingError as error:
            result.errors.append(error)
            continue
        result.ids.append(reading.id)


def _reading_rate(
    loaded: Loaded, rows: Rows, meter: Meter, reading: ReadingIn, zone, oldest: datetime
) -> None:
    """Rate one new reading into the batch's rows; raises ReadingError, changing nothing."""
    reading_age_check(reading, oldest=oldest)
    usage = reading_usage(meter, reading)
    tariff, model = loaded.tariffs[meter.id].at(reading.ts)
    start, end, late = loaded.period_of(meter.account, reading)
    period = loaded.periods.get(meter, start, end)
    local_time = reading.ts.astimezone(zone)
    rated = reading_price(model, period, reading_id=reading.id, usage=usage, local_time=local_time)
    if register_advance(meter, reading):
        rows.registers_moved.add(meter.id)
    loaded.recorded.add((meter.id, reading.id))
    period.usage, period.exact_amount = rated.usage_after, rated.exact_after
    period.amount = round6(rated.exact_after)  # = the sum of the period's charges
    if (watch := loaded.watches.get(meter.account_id)) is not None:
        after = Totals(period.amount, period.usage)
        watch.charged(
            meter_id=meter.id, period_start=start, amount=rated.amount, usage=usage, meter=after
        )
    placed = (tariff, start, late)
    rows.add(meter, reading, usage=usage, rated=rated, placed=placed, now=loaded.now)
