"""What the consumers share (metering/consumers/common.py): the budget of a connection."""

from metering.consumers.common import TokenBucket


def test_a_budget_allows_a_burst_then_refills_at_its_rate():
    bucket = TokenBucket(60, now=0.0)
    assert all(bucket.take(0.0) for _ in range(60))  # the burst
    assert not bucket.take(0.0)
    assert not bucket.take(0.5)  # half an event back: not yet
    assert bucket.take(1.0)  # 60 a minute: one a second
    assert not bucket.take(1.0)


def test_a_refused_event_spends_nothing_and_an_idle_budget_refills_only_to_its_burst():
    bucket = TokenBucket(2, now=0.0)
    assert bucket.take(0.0) and bucket.take(0.0)
    assert not bucket.take(10.0) and not bucket.take(20.0)  # 2 a minute: one per 30 s
    assert bucket.take(30.0)
    assert [bucket.take(3600.0) for _ in range(3)] == [True, True, False]
