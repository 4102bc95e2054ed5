"""An in-memory channel layer that pushes every message through channels_redis's serializer.

Unit and consumer tests run without Redis, but a Decimal or datetime that
msgpack cannot carry must still fail a test, not production.
"""

from channels.layers import InMemoryChannelLayer
from channels_redis.serializers import registry


class SerializingInMemoryChannelLayer(InMemoryChannelLayer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._serializer = registry.get_serializer("msgpack")

    def _round_trip(self, message: dict) -> dict:
        return self._serializer.deserialize(self._serializer.serialize(message))

    async def send(self, channel, message):
        await super().send(channel, self._round_trip(message))

    async def group_send(self, group, message):
        await super().group_send(group, self._round_trip(message))

    async def group_members(self, groups: list[str]) -> dict[str, list[str]]:
        """As project/channel_layer.py's: the channels of each group."""
        return {group: list(self.groups.get(group, {})) for group in groups}
