"""When a failed delivery is tried again, and when it is given up: pure functions.

The delay after the n-th failed attempt is the n-th entry of the schedule
(METERLINE_WEBHOOK_RETRY_SECONDS: 5 s, 1 min, 5 min, 30 min, 2 h, 8 h, 24 h by default,
so the last of 8 attempts comes about 34.6 hours after the first). A delivery is given
up once the schedule is spent, or when it fails after having waited longer than the
whole schedule (and a minute of grace): deliveries to one endpoint go out in order, one
at a time, so those queued behind an event that was retried for a day get one attempt
each once it is given up, and an endpoint that stays down fails them in a row (and is
disabled) within minutes rather than a day each.
"""

from collections.abc import Sequence
from datetime import timedelta

# Waiting too long means this much longer than the schedule, so that a schedule of short
# waits (tests, "0,0,0") still has each of its attempts, which take time themselves.
GRACE = timedelta(minutes=1)


def retry_delay(
    *, failed_attempts: int, waited: timedelta, schedule: Sequence[int]
) -> timedelta | None:
    """The wait before the next attempt, or None to give the delivery up.

    `waited`: since the delivery's schedule started (its fan-out, or a resend).
    """
    if failed_attempts > len(schedule) or waited > timedelta(seconds=sum(schedule)) + GRACE:
        return None
    return timedelta(seconds=schedule[failed_attempts - 1])
