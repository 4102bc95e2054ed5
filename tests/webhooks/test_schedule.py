"""The retry schedule: first retry within 10 s, retried for at least 24 hours, then given up;
a delivery that already waited out the whole schedule gets no retries."""

from datetime import timedelta

from django.conf import settings

from webhooks.schedule import GRACE, retry_delay

DEFAULT = settings.METERLINE_WEBHOOK_RETRY_SECONDS


def test_the_default_schedule_retries_first_within_10_s_and_for_at_least_a_day():
    assert DEFAULT == [5, 60, 300, 1800, 7200, 28800, 86400]
    waits, waited, failed = [], timedelta(0), 1
    while (
        delay := retry_delay(failed_attempts=failed, waited=waited, schedule=DEFAULT)
    ) is not None:
        waits.append(delay)
        waited += delay
        failed += 1
    assert waits[0] <= timedelta(seconds=10)
    assert waits == sorted(waits)  # growing
    assert sum(waits, timedelta(0)) >= timedelta(hours=24)
    assert failed == len(DEFAULT) + 1  # the attempts in all: the first and one per wait


def test_a_delivery_that_waited_longer_than_the_schedule_is_given_up_at_its_first_failure():
    whole = timedelta(seconds=sum(DEFAULT))
    assert retry_delay(failed_attempts=1, waited=whole, schedule=DEFAULT) == timedelta(seconds=5)
    assert (
        retry_delay(failed_attempts=1, waited=whole + GRACE + timedelta(1), schedule=DEFAULT)
        is None
    )


def test_an_empty_schedule_gives_up_at_once():
    assert retry_delay(failed_attempts=1, waited=timedelta(0), schedule=[]) is None
