"""The channel layer on a real Redis server: a burst of commands beyond its connection pool
waits for connections instead of failing (project/channel_layer.py, fix 4).

A fleet reconnecting after a restart joins and leaves thousands of groups at once in
one web process; with redis-py 8's pool, every command beyond its 100th connection in
flight raised MaxConnectionsError and crashed its consumer.
"""

import asyncio

import pytest
import redis.asyncio

from project.channel_layer import POOL_CONNECTIONS, ShardedRedisChannelLayer
from tests.integration.stack import make_stack

pytestmark = pytest.mark.integration

BURST = 10 * POOL_CONNECTIONS


@pytest.fixture(scope="module")
def redis_url():
    stack = make_stack()
    try:
        stack.start_redis()
        yield stack.redis_url
    finally:
        stack.stop()


async def test_a_burst_of_group_joins_beyond_the_pool_all_succeed(redis_url):
    layer = ShardedRedisChannelLayer(hosts=[{"address": redis_url, "socket_timeout": None}])
    groups = [f"account-devices-acc_{n}" for n in range(10)]
    await asyncio.gather(
        *(layer.group_add(groups[n % 10], f"specific.p!c{n}") for n in range(BURST))
    )
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        members = [await client.zcard(layer._group_key(group)) for group in groups]
        clients = (await client.info("clients"))["connected_clients"]
    finally:
        await client.aclose()
    assert members == [BURST // 10] * 10
    assert clients <= POOL_CONNECTIONS + 1  # the layer's, at most its cap, and this one
    await layer.flush()
