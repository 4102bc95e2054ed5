"""The channel layer on real Redis servers: what the rating channel delivers to competing workers.

Two receivers on one channel, as two `runworker rating` processes are. channels-redis
keeps one "in flight" backup per channel that each receive first puts back on the
channel, so one worker's receive re-delivers the message another just took
(channels_redis issue 163). Meterline's layer (project/channel_layer.py) hands each
message to one receiver only, and keeps a plain channel on one shard, so a message
sent while both receivers wait is received at once, whichever shard they wait on.
"""

import asyncio
import time
from collections import Counter

import pytest

from project.channel_layer import ShardedRedisChannelLayer
from tests.integration.stack import make_stack

pytestmark = pytest.mark.integration

MESSAGES = 3000


@pytest.fixture(scope="module")
def redis_urls():
    stack = make_stack()
    stack.redis_shards = 2
    try:
        stack.start_redis()
        yield stack.redis_url.split(",")
    finally:
        stack.stop()


def layer(urls: list[str]) -> ShardedRedisChannelLayer:
    hosts = [{"address": url, "socket_timeout": None} for url in urls]
    return ShardedRedisChannelLayer(hosts=hosts, capacity=MESSAGES * 2)


async def _compete(sender, receivers, channel: str) -> Counter:
    """Send MESSAGES while every receiver takes them as fast as it can; how often each came."""
    seen: Counter = Counter()

    async def take(receiver) -> None:
        while True:
            message = await receiver.receive(channel)
            seen[message["n"]] += 1
            await asyncio.sleep(0)  # a worker rates between receives

    tasks = [asyncio.create_task(take(receiver)) for receiver in receivers]
    for n in range(MESSAGES):
        await sender.send(channel, {"type": "rate.batch", "n": n})
    deadline = time.monotonic() + 30
    while len(seen) < MESSAGES and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # let any second delivery arrive
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return seen


@pytest.mark.parametrize("shards", [1, 2])
async def test_competing_receivers_get_each_message_once(redis_urls, shards):
    urls = redis_urls[:shards]
    sender, receivers = layer(urls), [layer(urls), layer(urls)]
    seen = await _compete(sender, receivers, f"rating-test-{shards}")
    twice = sum(1 for count in seen.values() if count > 1)
    assert len(seen) == MESSAGES, f"{MESSAGES - len(seen)} messages never received"
    assert twice == 0, f"{twice} of {MESSAGES} messages received more than once"
    for each in (sender, *receivers):
        await each.close_pools()


async def test_a_lone_message_reaches_the_receiver_whichever_process_sent_it(redis_urls):
    """One worker waits; two web processes send one message at a time: each arrives at once."""
    senders, receiver = [layer(redis_urls), layer(redis_urls)], layer(redis_urls)
    try:
        for n in range(8):
            send = senders[n % 2].send("rating-lone", {"type": "rate.batch", "n": n})
            received = receiver.receive("rating-lone")
            _, message = await asyncio.gather(send, asyncio.wait_for(received, 3))
            assert message["n"] == n
    finally:
        for each in (*senders, receiver):
            await each.close_pools()
