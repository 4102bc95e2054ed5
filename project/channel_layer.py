"""The channel layer: channels-redis, with one fix to its sharding over several servers.

channels-redis 4.3.0 (and its main branch as of 2026-12) picks the shard of a
message sent to a process-specific channel (`specific.<process>!<conn>`) by
hashing the whole name, but a process receives its specific channels from
the shard of the `specific.<process>!` prefix alone, as `group_send` also
assumes. With two or more servers in REDIS_URL, a plain `send()` to a
connection (a rating worker's answer to a web process, a `meter.replaced`
to an older connection) therefore lands where nobody reads it about half
the time. Hashing the prefix, as every other path does, puts it on the
receiver's shard. With one server this changes nothing.
"""

from channels_redis.core import RedisChannelLayer


class ShardedRedisChannelLayer(RedisChannelLayer):
    def consistent_hash(self, value):
        return super().consistent_hash(self.non_local_name(value))
