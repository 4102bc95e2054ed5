"""WebSocket consumers: devices stream readings in, dashboards watch charges come out.

They parse and authenticate only. Rating happens in the `rating` workers,
to which frames travel in batches (metering/batching.py); a device hears
`ack` once the worker has committed the frame's charges.
"""

import asyncio
import json
import logging
import time
from datetime import timedelta
from functools import partial
from urllib.parse import parse_qs, urlparse

import redis
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.utils import timezone

from metering.batching import frame_batcher
from metering.connections import meter_connection_close, meter_connection_open
from metering.dashboard import account_snapshot, meter_status_event
from metering.ordering import EventOrder
from metering.parsing import parse_frame
from metering.selectors import (
    Access,
    account_event_seq,
    dashboard_access,
    dashboard_session_access,
    meter_for_token,
)
from project.metrics import (
    ACK_SECONDS,
    BUSY_ANSWERS,
    DASHBOARD_CONNECTIONS,
    DEVICE_CONNECTIONS,
    LAYER_SEND_ERRORS,
    READINGS_BUSY,
    READINGS_REFUSED,
)
from protocol import (
    BUSY_RETRY_MS,
    CLOSE_FORBIDDEN,
    CLOSE_REPLACED,
    CLOSE_UNAUTHENTICATED,
    LAYER_EXPIRY_SECONDS,
    ReadingError,
    account_group,
    meter_group,
)

logger = logging.getLogger(__name__)

# What the channel layer raises when Redis is unreachable.
LAYER_ERRORS = (redis.RedisError, OSError)
# How long a dashboard holds events back waiting for a missing earlier one,
# before it sends a fresh snapshot instead.
GAP_PATIENCE_SECONDS = 0.5
# How often a dashboard rejoins its account's group and checks it missed nothing.
GROUP_REFRESH_SECONDS = 5.0


def bearer_token(scope) -> str | None:
    """The token from `Authorization: Bearer ...`, else from `?token=`."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
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


class DeviceConsumer(ConnectionGauge, HotPathDispatch, AsyncWebsocketConsumer):
    gauge = DEVICE_CONNECTIONS
    no_database = frozenset({"websocket.receive"})
    meter = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Frames handed to the rating workers and not yet answered: frame number
        # -> when sent. Bounded, so one device cannot flood the workers; entries
        # older than the layer's expiry are dropped (lost; the device resends).
        self.in_flight: dict[int, float] = {}
        self.frames_sent = 0

    async def connect(self):
        token = bearer_token(self.scope)
        meter = await database_sync_to_async(meter_for_token)(token=token) if token else None
        # Accept before closing: a close before accept is an HTTP 403, and the
        # device would never see the contract's close code.
        await self.accept()
        if meter is None:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not meter.active:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self.channel_layer.group_add(meter_group(meter.id), self.channel_name)
        # A rotation or deactivation between the lookup and joining the group
        # sent its close message before we could hear it: look again.
        again = await database_sync_to_async(meter_for_token)(token=token)
        if again is None or not again.active:
            await self.channel_layer.group_discard(meter_group(meter.id), self.channel_name)
            await self.close(code=CLOSE_UNAUTHENTICATED if again is None else CLOSE_FORBIDDEN)
            return
        self.meter = meter
        self._connection_counted()
        previous = await database_sync_to_async(meter_connection_open)(
            meter_id=meter.id, channel_name=self.channel_name
        )
        if previous:
            # One connection per meter: the newest wins (a device that
            # reconnects after a network drop replaces its half-open socket).
            await self._tell(previous, {"type": "meter.replaced"})
        await self._publish_status(online=True)

    async def disconnect(self, code):
        meter, self.meter = self.meter, None
        if meter is None:
            return
        await self.channel_layer.group_discard(meter_group(meter.id), self.channel_name)
        went_offline = await database_sync_to_async(meter_connection_close)(
            meter_id=meter.id, channel_name=self.channel_name
        )
        if went_offline:
            await self._publish_status(online=False, meter=meter)

    async def receive(self, text_data=None, bytes_data=None):
        if self.meter is None:
            return
        arrived = time.perf_counter()
        try:
            frame = parse_frame(
                text_data if text_data is not None else bytes_data,
                kind=self.meter.kind,
                now=timezone.now(),
                max_bytes=settings.METERLINE_MAX_FRAME_BYTES,
                max_batch=settings.METERLINE_MAX_BATCH,
                max_future=timedelta(seconds=settings.METERLINE_MAX_FUTURE_SECONDS),
            )
        except ReadingError as error:
            READINGS_REFUSED.inc()  # the whole frame, in one error
            await self._send(error.to_message())
            return
        if frame.errors:
            READINGS_REFUSED.inc(len(frame.errors))
        for error in frame.errors:
            await self._send(error.to_message())
        if not frame.readings:
            if not frame.errors:  # an empty batch: nothing to rate, still answered
                await self._send({"type": "ack", "ids": [], "duplicates": []})
            return
        ids = [reading.id for reading in frame.readings]
        if not self._window_open():
            await self._send_busy(ids)
            return
        self.frames_sent += 1
        number = self.frames_sent
        self.in_flight[number] = time.monotonic()
        frame_batcher(self.channel_layer).submit(
            self.meter.id,
            self.meter.account_id,
            [reading.to_wire() for reading in frame.readings],
            partial(self._frame_answered, number, ids, arrived),
        )

    def _window_open(self) -> bool:
        # A frame unanswered this long was lost: no answer comes after the layer's expiry.
        expired = time.monotonic() - LAYER_EXPIRY_SECONDS
        for frame, sent_at in list(self.in_flight.items()):
            if sent_at < expired:
                del self.in_flight[frame]
        return len(self.in_flight) < settings.METERLINE_MAX_IN_FLIGHT

    async def _frame_answered(
        self, number: int, ids: list[str], arrived: float, answer: dict
    ) -> None:
        """A rating worker's answer to frame `number` (metering/batching.py), which
        reached `receive` at `arrived` (perf_counter)."""
        self.in_flight.pop(number, None)
        if self.meter is None:  # the device has gone; it resends on its next connection
            return
        if answer.get("busy"):
            await self._send_busy(ids)
            return
        if answer["ids"] or answer["duplicates"]:
            await self._send(
                {"type": "ack", "ids": answer["ids"], "duplicates": answer["duplicates"]}
            )
            ACK_SECONDS.observe(time.perf_counter() - arrived)
        for error in answer["errors"]:
            await self._send(error)

    # --- messages from the operator API and other connections -----------------

    async def meter_close(self, message):
        await self.close(code=message["code"])

    async def meter_replaced(self, message):
        await self.close(code=CLOSE_REPLACED)

    async def _send_busy(self, ids: list[str]) -> None:
        READINGS_BUSY.inc(len(ids))
        BUSY_ANSWERS.inc()
        await self._send({"type": "busy", "ids": ids, "retry_after_ms": BUSY_RETRY_MS})

    async def _tell(self, channel: str, message: dict) -> None:
        try:
            await self.channel_layer.send(channel, message)
        except (ChannelFull, *LAYER_ERRORS):
            LAYER_SEND_ERRORS.inc()
            meter = self.meter.id if self.meter is not None else None
            logger.warning(
                "could not reach connection %s", channel, exc_info=True, extra={"meter": meter}
            )

    async def _send(self, message: dict) -> None:
        await self.send(text_data=json.dumps(message))

    async def _publish_status(self, *, online: bool, meter=None) -> None:
        meter = meter or self.meter
        event = meter_status_event(meter_id=meter.id, online=online)
        await self.channel_layer.group_send(
            account_group(meter.account_id), {"type": "dashboard.events", "events": [event]}
        )


class DashboardConsumer(ConnectionGauge, HotPathDispatch, AsyncWebsocketConsumer):
    gauge = DASHBOARD_CONNECTIONS
    no_database = frozenset({"websocket.receive", "dashboard.events"})
    group = None
    order: EventOrder | None = None
    # The account's event number a refresh ago: what should have arrived by now.
    committed_before = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.timers: dict[str, asyncio.TimerHandle] = {}  # message type -> pending wake-up

    async def connect(self):
        account_id = self.scope["url_route"]["kwargs"]["account_id"]
        token = bearer_token(self.scope)
        user = self.scope.get("user")
        if token or user is None or not user.is_authenticated:
            access = await database_sync_to_async(dashboard_access)(
                account_id=account_id, token=token
            )
        elif not origin_allowed(self.scope):
            # The browser sends the session cookie whatever page opened the
            # socket: only our own pages may use it (cross-site WebSocket hijacking).
            access = Access.NOT_ALLOWED
        else:
            access = await database_sync_to_async(dashboard_session_access)(
                account_id=account_id, user=user
            )
        await self.accept()
        if access is not Access.ALLOWED:
            await self.close(code=access.value)
            return
        # Join before taking the snapshot, so no charge falls between the two;
        # the events the snapshot already counts are dropped by their number.
        self.account_id = account_id
        self.group = account_group(account_id)
        self._connection_counted()
        await self.channel_layer.group_add(self.group, self.channel_name)
        snapshot = await self._send_snapshot()
        self.order = EventOrder(after=snapshot["seq"])
        self._wake_later("dashboard.refresh", GROUP_REFRESH_SECONDS)

    async def disconnect(self, code):
        for timer in self.timers.values():
            timer.cancel()
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        """Dashboards only listen."""

    async def dashboard_events(self, message):
        for event in message["events"]:
            if "seq" not in event or self.order is None:  # meter status: not numbered
                await self._send(event)
                continue
            for ready in self.order.accept(event["seq"], event):
                await self._send(ready)
        self._wait_out_gap()

    async def dashboard_gap(self, message):
        """The patience for a missing event ran out: a fresh snapshot counts it."""
        self.timers.pop("dashboard.gap", None)
        if self.order.next == message["next"]:
            await self._resync()
        self._wait_out_gap()

    async def dashboard_refresh(self, message):
        """Stay in the account's group (a restarted Redis shard forgets its groups), and
        catch up if events committed a whole refresh ago have still not arrived."""
        self.timers.pop("dashboard.refresh", None)
        await self.channel_layer.group_add(self.group, self.channel_name)
        committed = await database_sync_to_async(account_event_seq)(account_id=self.account_id)
        if self.committed_before >= self.order.next and not self.order.waiting:
            await self._resync()
        self.committed_before = committed
        self._wake_later("dashboard.refresh", GROUP_REFRESH_SECONDS)

    async def _resync(self) -> None:
        snapshot = await self._send_snapshot()
        for ready in self.order.rebase(after=snapshot["seq"]):
            await self._send(ready)

    async def _send_snapshot(self) -> dict:
        snapshot = await database_sync_to_async(account_snapshot)(account_id=self.account_id)
        await self._send(snapshot)
        return snapshot

    def _wait_out_gap(self) -> None:
        if self.order.waiting:
            self._wake_later("dashboard.gap", GAP_PATIENCE_SECONDS, next=self.order.next)

    def _wake_later(self, kind: str, delay: float, **fields) -> None:
        """Send ourselves `kind` after `delay` (unless one is pending), through our own
        channel, so that it is handled in turn with the events."""
        if kind in self.timers:
            return
        wake = {"type": kind, **fields}
        self.timers[kind] = asyncio.get_running_loop().call_later(
            delay, lambda: asyncio.ensure_future(self.channel_layer.send(self.channel_name, wake))
        )

    async def _send(self, message: dict) -> None:
        await self.send(text_data=json.dumps(message))
