"""The channel layer: channels-redis, with three fixes to how it routes and hands out messages.

1. A process's channels on its shard. channels-redis 4.3.0 (and its main
   branch as of 2026-12) picks the shard of a message sent to a
   process-specific channel (`specific.<process>!<conn>`) by hashing the whole
   name, but a process receives its specific channels from the shard of the
   `specific.<process>!` prefix alone, as `group_send` also assumes. With two
   or more servers in REDIS_URL, a plain `send()` to a connection (a rating
   worker's answer to a web process, a `meter.replaced` to an older
   connection) therefore landed where nobody reads it about half the time.
   Hashing the prefix, as every other path does, puts it on the receiver's shard.

2. A plain channel on one shard. channels-redis sends each message of a
   plain channel (`rating`) to the next shard in turn, and each receive waits
   on the next shard in turn until something arrives there. A worker waiting
   on one shard therefore never sees a message sent to another until traffic
   happens to reach its own: a lone batch waited for seconds, or for ever.
   Sent to and received from the shard its name hashes to, a plain channel
   is one queue. Groups and process channels still spread over the shards.

3. Each message of a plain channel to one receiver. Before every receive,
   channels-redis puts back on the channel whatever sits in the channel's one
   "in flight" backup, which another worker's receive has just put there: with
   two workers on `rating`, about 1 message in 100 to 1 in 3 reached both
   (channels_redis issue 163), and each was rated twice (found duplicate, so
   charged once, but counted and paid for twice). The backup saves nothing a
   worker could lose (a message is popped before it reaches the backup), so a
   plain channel is received with one blocking pop. A worker that dies holding
   a message loses it either way: its devices hear no ack and resend.

4. A pool that waits. redis-py 8 caps a connection pool at 100 connections and
   raises MaxConnectionsError on the command that would need a 101st, where
   redis-py 5 had no cap. A burst of connects and disconnects in one web process
   (a fleet reconnecting after a restart: each device joins and leaves two
   groups) has more commands than that in flight, and every consumer that hit
   the cap crashed and dropped its socket (454 of 500 devices in one storm here).
   The layer's pools wait for a free connection instead, up to
   POOL_WAIT_SECONDS (then a redis error, as in any outage), with the same cap
   of connections per process and server.

With one server, 1 and 2 change nothing.
"""

import time

from channels.exceptions import ChannelFull
from channels_redis.core import RedisChannelLayer
from redis.asyncio import BlockingConnectionPool

POOL_CONNECTIONS = 100  # per process and Redis server: redis-py 8's own cap (fix 4)
POOL_WAIT_SECONDS = 20.0


class ShardedRedisChannelLayer(RedisChannelLayer):
    def create_pool(self, index):
        """A pool that waits for a free connection when all are in use (fix 4)."""
        host = dict(self.hosts[index])
        if "address" not in host:  # sentinels: as channels-redis makes them
            return super().create_pool(index)
        host.setdefault("max_connections", POOL_CONNECTIONS)
        host.setdefault("timeout", POOL_WAIT_SECONDS)
        return BlockingConnectionPool.from_url(host.pop("address"), **host)

    def consistent_hash(self, value):
        return super().consistent_hash(self.non_local_name(value))

    async def send(self, channel, message):
        if "!" in channel:  # a process's channel: channels-redis routes it (fix 1)
            return await super().send(channel, message)
        assert self.require_valid_channel_name(channel), "Channel name not valid"
        connection, key = self._plain(channel)
        # The same bookkeeping as channels-redis: drop expired messages, refuse when full.
        await connection.zremrangebyscore(key, min=0, max=int(time.time()) - int(self.expiry))
        if await connection.zcount(key, "-inf", "+inf") >= self.get_capacity(channel):
            raise ChannelFull()
        await connection.zadd(key, {self.serialize(message): time.time()})
        await connection.expire(key, int(self.expiry))

    async def receive_single(self, channel):
        if "!" in channel:
            return await super().receive_single(channel)
        assert self.require_valid_channel_name(channel, receive=True), "Channel name invalid"
        connection, key = self._plain(channel)
        while True:
            popped = await connection.bzpopmin(key, timeout=self.brpop_timeout)
            if popped is not None:
                return channel, self.deserialize(popped[1])

    async def group_members(self, groups: list[str]) -> dict[str, list[str]]:
        """The channels of each group (memberships not expired), one round trip per shard:
        for a sender that sends one message per process rather than one per group
        (billing/events.py, the dashboards' events of a rating batch)."""
        since = int(time.time()) - self.group_expiry
        members = {}
        for index, names in self._by_shard(groups).items():
            pipe = self.connection(index).pipeline(transaction=False)
            for name in names:
                pipe.zrangebyscore(self._group_key(name), since, "+inf")
            for name, found in zip(names, await pipe.execute(), strict=True):
                members[name] = [channel.decode() for channel in found]
        return members

    async def groups_add(self, groups: list[str], channel: str) -> None:
        """group_add of `channel` to each group, one round trip per shard (a device joins
        two groups on every connect: four commands, one after another, in channels-redis)."""

        def add(pipe, key: str) -> None:
            pipe.zadd(key, {channel: time.time()})
            pipe.expire(key, self.group_expiry)

        await self._groups_pipelined(groups, add)

    async def groups_discard(self, groups: list[str], channel: str) -> None:
        """group_discard of `channel` from each group, one round trip per shard."""
        await self._groups_pipelined(groups, lambda pipe, key: pipe.zrem(key, channel))

    async def _groups_pipelined(self, groups: list[str], commands) -> None:
        for index, names in self._by_shard(groups).items():
            pipe = self.connection(index).pipeline(transaction=False)
            for name in names:
                assert self.valid_group_name(name), "Group name not valid"
                commands(pipe, self._group_key(name))
            await pipe.execute()

    def _by_shard(self, groups: list[str]) -> dict[int, list[str]]:
        by_shard: dict[int, list[str]] = {}
        for group in groups:
            by_shard.setdefault(self.consistent_hash(group), []).append(group)
        return by_shard

    def _plain(self, channel: str):
        """The connection and key of a plain channel: its one shard (fix 2)."""
        return self.connection(self.consistent_hash(channel)), self.prefix + channel
