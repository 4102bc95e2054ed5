"""What the consumers share (metering/consumers/common.py): the budget of a connection."""

import asyncio

import pytest

from metering.consumers.common import ConnectGate, TokenBucket


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


def test_the_connect_gate_gives_each_turned_away_connect_its_own_later_turn():
    gate = ConnectGate()
    rate = gate.floor_per_second  # nothing admitted yet: the floor
    turns = [gate.turn(100.0) for _ in range(3)]
    assert turns == pytest.approx([1 / rate, 2 / rate, 3 / rate])
    crowded = ConnectGate()
    crowded.waiting = 40  # those already waiting go first
    assert crowded.turn(0.0) == pytest.approx(41 / rate)


def test_the_connect_gate_spaces_turns_at_the_rate_it_has_been_admitting():
    gate = ConnectGate()
    fast = 4 * gate.floor_per_second
    gate.admitted.extend(i / fast for i in range(int(fast * gate.window)))
    now = gate.window
    assert gate.rate(now) == pytest.approx(fast, rel=0.01)
    assert gate.turn(now) == pytest.approx(1 / fast, rel=0.01)
    # Admissions older than the window no longer count: back to the floor.
    assert gate.rate(now + 2 * gate.window) == gate.floor_per_second


async def test_the_connect_gate_works_on_at_most_at_once_and_is_full_when_its_room_is():
    gate = ConnectGate()
    gate.at_once, gate.waiting_room = 2, 3
    gate.slots = asyncio.Semaphore(gate.at_once)
    inside, most, release = 0, 0, asyncio.Event()

    async def connect():
        nonlocal inside, most
        async with gate.slot():
            inside += 1
            most = max(most, inside)
            await release.wait()
            inside -= 1

    tasks = [asyncio.create_task(connect()) for _ in range(5)]
    await asyncio.sleep(0.01)
    assert (most, gate.waiting, gate.full()) == (2, 3, True)
    release.set()
    await asyncio.gather(*tasks)
    assert (most, gate.waiting, gate.full(), len(gate.admitted)) == (2, 0, False, 5)
