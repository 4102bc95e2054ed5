"""What the device and dashboard consumers share: reading credentials and the Origin from the
scope, the hot-path dispatch, the connection gauges, a budget for what a connection may do."""

import asyncio
import contextlib
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlparse

import redis
from channels.consumer import get_handler_name
from channels.security.websocket import OriginValidator
from django.conf import settings

from protocol import bearer_credentials

# What the channel layer raises when Redis is unreachable.
LAYER_ERRORS = (redis.RedisError, OSError)


def bearer_token(scope) -> str | None:
    """The token from `Authorization: Bearer ...`, else from `?token=`."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            with contextlib.suppress(ValueError):  # malformed: as if none came
                token = bearer_credentials(value)
                if token:
                    return token
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return values[0] if values else None


def origin_allowed(scope) -> bool:
    """Whether the Origin header names one of ALLOWED_HOSTS, as channels'
    AllowedHostsOriginValidator decides (no Origin: refused)."""
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = ["localhost", "127.0.0.1", "[::1]"]
    parsed = None
    for name, value in scope.get("headers", []):
        if name == b"origin":
            parsed = urlparse(value.decode("latin-1"))
    return OriginValidator(None, allowed).valid_origin(parsed)


class ConnectGate:
    """How many connects a web process works on at once, and how many it lets wait for
    that; the rest are told when to come back.

    A fleet reconnecting together after a restart would otherwise hold every Redis
    connection of the process and its connect threads' queue until their timeouts cut
    the consumers down, and each device cut down came back to make it worse. A connect
    beyond the waiting room is accepted and told `try_again_later` with a
    `retry_after_ms` that gives each turned-away device its own later turn, at the rate
    the process has been admitting (closed with CLOSE_TRY_AGAIN_LATER if it stays): the
    fleet comes back spread out, not all at once.
    The room is small, so that no device waits there for longer than its handshake
    timeout (it would come back while its first connect was still to be worked on).
    """

    at_once = 32  # connects doing their database and Redis work together
    waiting_room = 256  # connects waiting for that; more are told to come back
    window = 10.0  # seconds of admissions the rate is measured over
    floor_per_second = 50.0  # the rate assumed while fewer are measured

    def __init__(self) -> None:
        self.slots = asyncio.Semaphore(self.at_once)
        self.waiting = 0
        self.admitted: deque[float] = deque()  # when each admission of the window ended
        self.last_turn = 0.0  # the latest time a turned-away connect was told to return

    def full(self) -> bool:
        return self.waiting >= self.waiting_room

    def rate(self, now: float) -> float:
        """Admissions a second over the last `window` seconds, at least the floor."""
        while self.admitted and self.admitted[0] < now - self.window:
            self.admitted.popleft()
        return max(self.floor_per_second, len(self.admitted) / self.window)

    def turn(self, now: float) -> float:
        """Seconds until a connect turned away now should come back: after everyone
        waiting and everyone told before it, at the measured admission rate."""
        rate = self.rate(now)
        self.last_turn = max(now + self.waiting / rate, self.last_turn) + 1 / rate
        return self.last_turn - now

    @contextlib.asynccontextmanager
    async def slot(self, *, admission: bool = True) -> AsyncIterator[None]:
        """Hold one of the slots (waiting for it); `admission`: counted in the rate."""
        self.waiting += 1
        try:
            await self.slots.acquire()
        finally:
            self.waiting -= 1
        try:
            yield
        finally:
            self.slots.release()
            if admission:
                self.admitted.append(time.monotonic())


_connect_gates: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def connect_gate() -> ConnectGate:
    """This event loop's ConnectGate."""
    loop = asyncio.get_running_loop()
    gate = _connect_gates.get(loop)
    if gate is None:
        gate = _connect_gates[loop] = ConnectGate()
    return gate


async def groups_join(layer, groups: list[str], channel: str) -> None:
    """Add the channel to the groups: in one round trip per Redis server where the layer
    can (project/channel_layer.py), else one group at a time."""
    if hasattr(layer, "groups_add"):
        await layer.groups_add(groups, channel)
        return
    for group in groups:
        await layer.group_add(group, channel)


async def groups_leave(layer, groups: list[str], channel: str) -> None:
    """Take the channel out of the groups, as groups_join adds it."""
    if hasattr(layer, "groups_discard"):
        await layer.groups_discard(groups, channel)
        return
    for group in groups:
        await layer.group_discard(group, channel)


class HotPathDispatch:
    """Channels runs `close_old_connections` in a thread before every handler (a
    thread hop per message, the largest single cost of a frame here). The
    handlers named in `no_database` touch no database, so they skip it; the
    ones that do use `database_sync_to_async`, which closes old connections itself.
    """

    no_database: frozenset[str] = frozenset()

    async def dispatch(self, message):
        if message["type"] in self.no_database:
            await getattr(self, get_handler_name(message))(message)
        else:
            await super().dispatch(message)


class TokenBucket:
    """A budget of `per_minute` events in a burst, refilled at `per_minute` a minute.
    Times are the caller's monotonic clock, in seconds."""

    __slots__ = ("at", "per_minute", "tokens")

    def __init__(self, per_minute: int, now: float) -> None:
        self.per_minute = per_minute
        self.tokens = float(per_minute)
        self.at = now

    def take(self, now: float) -> bool:
        """Spend one event if the budget allows it (a refused one spends nothing)."""
        refilled = self.tokens + (now - self.at) * self.per_minute / 60
        self.tokens, self.at = min(float(self.per_minute), refilled), now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class ConnectionGauge:
    """Counts the connection in `gauge` from `_connection_counted()` until the consumer
    ends, whichever way it ends (a handler that raises never reaches `disconnect`)."""

    gauge = None
    counted = False

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self.counted:
                self.gauge.dec()

    def _connection_counted(self) -> None:
        if not self.counted:
            self.counted = True
            self.gauge.inc()
