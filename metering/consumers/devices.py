"""The device WebSocket (CONTRACT.md section 3): authenticate, parse, hand frames to the
process's batcher, and answer each frame once the workers have committed it."""

import asyncio
import contextlib
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial

from channels.db import DatabaseSyncToAsync, database_sync_to_async
from channels.exceptions import ChannelFull, StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from channels.utils import await_many_dispatch
from django.conf import settings
from django.utils import timezone

from billing.money import format_amount
from metering.batching import frame_batcher
from metering.connections import meter_connection_close, meter_connection_take
from metering.consumers.common import (
    LAYER_ERRORS,
    ConnectionGauge,
    HotPathDispatch,
    TokenBucket,
    bearer_token,
    connect_gate,
    groups_join,
    groups_leave,
)
from metering.dashboard import meter_status_event
from metering.parsing import parse_frame
from metering.selectors import meter_for_token
from project.metrics import (
    ACK_SECONDS,
    BUSY_ANSWERS,
    CONNECTS_DEFERRED,
    DEVICE_CONNECTIONS,
    LAYER_SEND_ERRORS,
    READINGS_BUSY,
    READINGS_REFUSED,
)
from protocol import (
    BUSY_RETRY_MS,
    CLOSE_FORBIDDEN,
    CLOSE_REPLACED,
    CLOSE_TOO_MANY,
    CLOSE_TRY_AGAIN_LATER,
    CLOSE_UNAUTHENTICATED,
    RESTORE_MESSAGE,
    ReadingError,
    account_devices_group,
    account_group,
    cutoff_message,
    errors_message,
    meter_group,
    try_again_message,
)

logger = logging.getLogger(__name__)

# A connect or a disconnect waits on the database (the token's lookup, the meter's
# connection row), and channels runs every database_sync_to_async of a process in one
# thread: a fleet reconnecting at once after a restart queued there, about 50 connects a
# second, and handshakes timed out behind it. On PostgreSQL that work runs on threads of
# its own, each with its own connection; SQLite keeps its one writer.
CONNECT_THREADS = 4
# How long a device told to try again later may take to close the connection itself.
TRY_AGAIN_GRACE_SECONDS = 10.0
_connect_threads = ThreadPoolExecutor(CONNECT_THREADS, thread_name_prefix="device-connect")


def connect_database(func):
    """database_sync_to_async for the work of connects and disconnects (CONNECT_THREADS)."""
    if "postgresql" in settings.DATABASES["default"]["ENGINE"]:
        return DatabaseSyncToAsync(func, thread_sensitive=False, executor=_connect_threads)
    return database_sync_to_async(func)


class ListensOnceAdmitted:
    """AsyncConsumer.__call__, but the channel layer is listened to only once the connect
    has admitted the device (`self.meter` set). Every listener of a process takes part in
    channels-redis's hand-over of its one receive, and one cancelled while it holds it
    loses the message it was popping (a batch's answer, a cut-off): a fleet coming back
    at once, most of it refused or told to come back later, cancelled thousands a second.
    Whatever reaches the channel before the listening starts waits for it there."""

    async def __call__(self, scope, receive, send):
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.channel_name = await self.channel_layer.new_channel()
        self.base_send = send
        with contextlib.suppress(StopConsumer):  # the consumer's way of ending
            await self.dispatch(await receive())  # websocket.connect
            listened = [receive]
            if self.meter is not None:
                listened.append(partial(self.channel_layer.receive, self.channel_name))
            await await_many_dispatch(listened, self.dispatch)


class DeviceConsumer(ConnectionGauge, HotPathDispatch, ListensOnceAdmitted, AsyncWebsocketConsumer):
    gauge = DEVICE_CONNECTIONS
    # Every handler: those that reach the database do it through connect_database.
    no_database = frozenset(
        {
            "websocket.connect",
            "websocket.receive",
            "websocket.disconnect",
            "account.cutoff",
            "account.restore",
            "meter.close",
            "meter.replaced",
        }
    )
    meter = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Frames handed to the batcher and not yet answered. Bounded, so one device
        # cannot flood the workers; the batcher answers every frame once (busy if it
        # drops it), so none is forgotten while it still waits there.
        self.in_flight = 0
        # Frames with refused readings: a device that keeps sending them is closed (4429).
        self.refusals = TokenBucket(settings.METERLINE_INVALID_FRAMES_PER_MINUTE, time.monotonic())
        self.closing = False
        self.deferred: asyncio.TimerHandle | None = None  # told to try again later

    async def connect(self):
        gate = connect_gate()
        if gate.full():  # a fleet coming back at once: give this one a later turn
            retry_after_ms = round(gate.turn(time.monotonic()) * 1000)
            CONNECTS_DEFERRED.inc()
            await self.accept()
            # The device closes, having read it. Closed from here at once, a device too
            # slow to finish the close within autobahn's second would have the
            # connection reset under it, unread, and come back with no turn at all.
            await self._send(try_again_message(retry_after_ms=retry_after_ms))
            self.deferred = asyncio.get_running_loop().call_later(
                TRY_AGAIN_GRACE_SECONDS, self._deferred_close
            )
            return
        async with gate.slot():
            await self._admit(bearer_token(self.scope))

    async def _admit(self, token: str | None) -> None:
        """Check the token, join the meter's groups and take over its connection."""
        meter = await connect_database(meter_for_token)(token=token) if token else None
        # Accept before closing: a close before accept is an HTTP 403, and the
        # device would never see the contract's close code.
        await self.accept()
        if meter is None or not meter.active:
            await self.close(code=CLOSE_UNAUTHENTICATED if meter is None else CLOSE_FORBIDDEN)
            return
        groups = [meter_group(meter.id), account_devices_group(meter.account_id)]
        await groups_join(self.channel_layer, groups, self.channel_name)
        # A rotation, deactivation or cut-off between the lookup and joining the groups
        # sent its message before we could hear it: look again.
        again, previous = await connect_database(meter_connection_take)(
            token=token, meter_id=meter.id, channel_name=self.channel_name
        )
        if again is None or not again.active:
            await groups_leave(self.channel_layer, groups, self.channel_name)
            await self.close(code=CLOSE_UNAUTHENTICATED if again is None else CLOSE_FORBIDDEN)
            return
        self.meter = meter
        self._connection_counted()
        if previous:
            # One connection per meter: the newest wins (a device that
            # reconnects after a network drop replaces its half-open socket).
            await self._tell(previous, {"type": "meter.replaced"})
        await self._publish_status(online=True)
        if again.cut_off:  # told again on every connect while the account is cut off
            await self._send(cutoff_message(balance=format_amount(again.balance)))

    async def disconnect(self, code):
        meter, self.meter = self.meter, None
        if meter is None:
            return
        async with connect_gate().slot(admission=False):
            groups = [meter_group(meter.id), account_devices_group(meter.account_id)]
            await groups_leave(self.channel_layer, groups, self.channel_name)
            went_offline = await connect_database(meter_connection_close)(
                meter_id=meter.id, channel_name=self.channel_name
            )
            if went_offline:
                await self._publish_status(online=False, meter=meter)

    def _deferred_close(self) -> None:
        """A device told to try again later that is still here: close it."""
        self._spawn_close = asyncio.ensure_future(self.close(code=CLOSE_TRY_AGAIN_LATER))

    async def websocket_disconnect(self, message):
        # Channels' own also runs close_old_connections on the process's one thread for
        # sync code, after every disconnect: a fleet dropping at once queued there for
        # longer than daphne waits for a consumer to end. The database work here goes
        # through connect_database, which closes old connections in its own threads.
        if self.deferred is not None:
            self.deferred.cancel()
        await self.disconnect(message["code"])
        raise StopConsumer

    async def receive(self, text_data=None, bytes_data=None):
        if self.meter is None or self.closing:
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
            await self._refused([error.to_item()])
            return
        if frame.errors:
            READINGS_REFUSED.inc(len(frame.errors))
            if not await self._refused([error.to_item() for error in frame.errors]):
                return  # closed: the device sends its good readings again on its next connection
        if not frame.readings:
            if not frame.errors:  # an empty batch: nothing to rate, still answered
                await self._send({"type": "ack", "ids": [], "duplicates": []})
            return
        ids = [reading.id for reading in frame.readings]
        if self.in_flight < settings.METERLINE_MAX_IN_FLIGHT and self._submitted(
            frame.readings, partial(self._frame_answered, ids, arrived)
        ):
            self.in_flight += 1
        else:  # this connection's window is full, or its process's
            await self._send_busy(ids)

    def _submitted(self, readings, answered) -> bool:
        """Hand a frame to this process's batcher: False when it holds as much as it may."""
        batcher = frame_batcher(self.channel_layer)
        return batcher.submit(self.meter.id, self.meter.account_id, readings, answered)

    async def _refused(self, errors: list[dict]) -> bool:
        """Answer a frame's refused readings in one message and count the frame against the
        connection's budget: False when that spent it, and the connection is closing (4429)."""
        await self._send(errors_message(errors))
        if self.refusals.take(time.monotonic()):
            return True
        self.closing = True
        logger.warning(
            "meter %s sent too many refused frames: closing its connection (%d)",
            self.meter.id,
            CLOSE_TOO_MANY,
            extra={"meter": self.meter.id, "account": self.meter.account_id},
        )
        await self.close(code=CLOSE_TOO_MANY)
        return False

    async def _frame_answered(self, ids: list[str], arrived: float, answer: dict) -> None:
        """The batcher's one answer to a frame (a worker's, or busy), which reached
        `receive` at `arrived` (perf_counter)."""
        self.in_flight -= 1
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
        if answer["errors"]:
            await self._send(errors_message(answer["errors"]))

    # --- messages from the operator API and other connections -----------------

    async def meter_close(self, message):
        await self.close(code=message["code"])

    async def account_cutoff(self, message):
        """Credit control: the account's balance ran out (a charge of any of its meters)."""
        if self.meter is not None:
            await self._send(cutoff_message(balance=message["balance"]))

    async def account_restore(self, message):
        if self.meter is not None:
            await self._send(RESTORE_MESSAGE)

    async def meter_replaced(self, message):
        await self.close(code=CLOSE_REPLACED)

    async def _send_busy(self, ids: list[str]) -> None:
        READINGS_BUSY.inc(len(ids))
        BUSY_ANSWERS.inc()
        await self._send({"type": "busy", "ids": ids, "retry_after_ms": BUSY_RETRY_MS})

    async def _tell(self, channel: str, message: dict) -> None:
        try:
            await self.channel_layer.send(channel, message)
        except ChannelFull:
            # The process holding that connection reads nothing: most likely gone (its
            # connections are gone with it), and nothing more to say about it.
            LAYER_SEND_ERRORS.inc()
            logger.debug("connection %s unreachable: its process's channel is full", channel)
        except LAYER_ERRORS:
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
