"""Dashboard events released in commit order, whatever order they arrive in."""

from metering.ordering import EventOrder


def test_in_order_events_pass_straight_through():
    order = EventOrder(after=0)
    assert order.accept(1, "a") == ["a"]
    assert order.accept(2, "b") == ["b"]
    assert not order.waiting


def test_an_early_event_waits_for_the_one_before_it():
    order = EventOrder(after=0)
    assert order.accept(2, "b") == []
    assert order.waiting
    assert order.accept(1, "a") == ["a", "b"]
    assert not order.waiting


def test_events_the_snapshot_counts_and_repeats_are_dropped():
    order = EventOrder(after=5)
    assert order.accept(5, "in the snapshot") == []
    assert order.accept(6, "f") == ["f"]
    assert order.accept(6, "f again") == []


def test_a_fresh_snapshot_takes_over_from_a_lost_event():
    order = EventOrder(after=0)
    assert order.accept(3, "c") == []
    assert order.accept(5, "e") == []
    # Event 2 was lost; a new snapshot counts up to 3: 4 is still missing, 5 waits.
    assert order.rebase(after=3) == []
    assert order.waiting
    assert order.accept(4, "d") == ["d", "e"]
    assert order.accept(2, "too late") == []


def test_a_snapshot_past_everything_held_releases_nothing_it_counts():
    order = EventOrder(after=0)
    assert order.accept(2, "b") == []
    assert order.rebase(after=2) == []
    assert not order.waiting
    assert order.accept(3, "c") == ["c"]


def test_the_gap_before_the_first_event_held_back_is_named():
    order = EventOrder(after=2)
    assert order.missing is None
    order.accept(7, "g")
    order.accept(5, "e")
    assert order.missing == (3, 4)
    assert order.accept(3, "c") == ["c"]
    assert order.missing == (4, 4)
    assert order.accept(4, "d") == ["d", "e"]
    assert order.missing == (6, 6)
