"""What the device and dashboard consumers share: reading credentials and the Origin from the
scope, the hot-path dispatch, the connection gauges, a budget for what a connection may do."""

import contextlib
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
