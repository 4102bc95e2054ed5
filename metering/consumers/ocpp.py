"""The WebSocket of EV charge points speaking OCPP 1.6-J (CONTRACT.md section 8).

The subprotocol `ocpp1.6` is required at the handshake, and HTTP Basic (OCPP security
profile 1: the charge point id and the meter's token) right after: anything else is
never answered. Then every frame goes to the connection's CentralSystem
(metering/ocpp/central.py), which answers through this socket and rates readings
through the process's batcher, as every device's are. Messages from elsewhere reach
the connection through its meter's group (token rotated, meter disabled, an operator's
stop) and its account's devices group (a cut-off).
"""

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Sequence
from typing import Any

from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from metering.batching import frame_batcher
from metering.connections import meter_connection_close, meter_connection_open
from metering.consumers.common import LAYER_ERRORS, ConnectionGauge, HotPathDispatch
from metering.dashboard import meter_status_event
from metering.ocpp.actions import sessions_active_of
from metering.ocpp.central import CentralSystem
from metering.ocpp.selectors import ChargePoint, charge_point_for_credentials
from project.metrics import ACK_SECONDS, DEVICE_CONNECTIONS, LAYER_GROUP_SEND_ERRORS
from protocol import (
    CLOSE_FORBIDDEN,
    CLOSE_REPLACED,
    CLOSE_UNAUTHENTICATED,
    ReadingIn,
    account_devices_group,
    account_group,
    meter_group,
)

logger = logging.getLogger(__name__)

SUBPROTOCOL = "ocpp1.6"


def basic_credentials(scope) -> tuple[str, str] | None:
    """(user, password) from `Authorization: Basic ...`, if the header holds them."""
    for name, value in scope.get("headers", []):
        if name != b"authorization":
            continue
        scheme, _, encoded = value.decode("latin-1").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, colon, password = decoded.partition(":")
        return (user, password) if colon else None
    return None


class ChargePointConsumer(ConnectionGauge, HotPathDispatch, AsyncWebsocketConsumer):
    gauge = DEVICE_CONNECTIONS
    # Each hands work to the CentralSystem's tasks, which reach the database themselves.
    no_database = frozenset(
        {"websocket.receive", "ocpp.remote_stop", "account.cutoff", "account.restore"}
    )
    charge_point: ChargePoint | None = None
    central: CentralSystem | None = None

    async def connect(self):
        if SUBPROTOCOL not in self.scope.get("subprotocols", ()):
            await self.close()  # before accepting: the handshake is refused
            return
        found = await database_sync_to_async(self._credentials_check)()
        # Accepted before closing, so that the charge point sees the close code.
        await self.accept(subprotocol=SUBPROTOCOL)
        if found is None or not found.active:
            await self.close(code=CLOSE_UNAUTHENTICATED if found is None else CLOSE_FORBIDDEN)
            return
        groups = (meter_group(found.meter_id), account_devices_group(found.account_id))
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
        # A rotation or deactivation between the lookup and joining the group sent its
        # close before we could hear it: look again.
        again = await database_sync_to_async(self._credentials_check)()
        if again is None or not again.active:
            for group in groups:
                await self.channel_layer.group_discard(group, self.channel_name)
            await self.close(code=CLOSE_UNAUTHENTICATED if again is None else CLOSE_FORBIDDEN)
            return
        await self._opened(found)

    def _credentials_check(self) -> ChargePoint | None:
        charge_point_id = self.scope["url_route"]["kwargs"]["charge_point_id"]
        credentials = basic_credentials(self.scope)
        if credentials is None or credentials[0] != charge_point_id:
            return None
        return charge_point_for_credentials(
            charge_point_id=charge_point_id, password=credentials[1]
        )

    async def _opened(self, charge_point: ChargePoint) -> None:
        self.charge_point = charge_point
        self._connection_counted()
        self.central = CentralSystem(
            charge_point=charge_point,
            send=self._send_text,
            rate_once=self._rate_once,
            publish=self._publish,
        )
        previous = await database_sync_to_async(meter_connection_open)(
            meter_id=charge_point.meter_id, channel_name=self.channel_name
        )
        if previous:  # one connection per charge point: the newest wins
            await self._tell(previous, {"type": "meter.replaced"})
        await self._publish([meter_status_event(meter_id=charge_point.meter_id, online=True)])

    async def disconnect(self, code):
        charge_point, self.charge_point = self.charge_point, None
        if charge_point is None:
            return
        await self.central.close()
        for group in (
            meter_group(charge_point.meter_id),
            account_devices_group(charge_point.account_id),
        ):
            await self.channel_layer.group_discard(group, self.channel_name)
        went_offline = await database_sync_to_async(meter_connection_close)(
            meter_id=charge_point.meter_id, channel_name=self.channel_name
        )
        if went_offline:
            event = meter_status_event(meter_id=charge_point.meter_id, online=False)
            await self._publish([event], account_id=charge_point.account_id)

    async def receive(self, text_data=None, bytes_data=None):
        if self.charge_point is None:
            return
        frame = text_data if text_data is not None else bytes_data
        if len(frame) > settings.METERLINE_MAX_FRAME_BYTES:
            logger.warning(
                "ignoring a frame of %d bytes from %s",
                len(frame),
                self.charge_point.charge_point_id,
            )
            return
        self.central.received(frame)

    # --- messages from the operator API, credit control and other connections ----------

    async def meter_close(self, message):
        await self.close(code=message["code"])

    async def meter_replaced(self, message):
        await self.close(code=CLOSE_REPLACED)

    async def ocpp_remote_stop(self, message):
        """An operator's stop (POST /api/v1/charging-sessions/{id}/stop/)."""
        if self.central is not None:
            stop = self.central.remote_stop(
                session_id=message["session"], transaction_id=message["transaction"]
            )
            self.central.spawn(stop)

    async def account_cutoff(self, message):
        """The account's credit ran out: every session of this charge point is stopped."""
        if self.central is not None:
            self.central.spawn(self._sessions_stop())

    async def account_restore(self, message):
        """Nothing to undo: a driver starts a new session (Authorize is Accepted again)."""

    async def _sessions_stop(self) -> None:
        await self.central.sessions_stop(await sessions_active_of(self.central))

    # --- what the CentralSystem uses ---------------------------------------------------

    async def _send_text(self, text: str) -> None:
        await self.send(text_data=text)

    async def _rate_once(self, readings: Sequence[ReadingIn]) -> dict[str, Any]:
        """Hand the readings to this process's batcher, as a device frame; its answer."""
        arrived = time.perf_counter()
        answer: asyncio.Future = asyncio.get_running_loop().create_future()

        async def answered(outcome: dict[str, Any]) -> None:
            if not answer.done():  # not given up on (a later try is under way)
                answer.set_result(outcome)

        batcher = frame_batcher(self.channel_layer)
        cp = self.charge_point
        if batcher.submit(cp.meter_id, cp.account_id, readings, answered) is False:
            return {"busy": True}  # the process holds as many readings as it may
        outcome = await answer
        if not outcome.get("busy"):
            ACK_SECONDS.observe(time.perf_counter() - arrived)
        return outcome

    async def _publish(self, events: list[dict[str, Any]], account_id: str | None = None) -> None:
        account_id = account_id or self.charge_point.account_id
        try:
            await self.channel_layer.group_send(
                account_group(account_id), {"type": "dashboard.events", "events": events}
            )
        except (ChannelFull, *LAYER_ERRORS):
            LAYER_GROUP_SEND_ERRORS.inc()
            logger.warning("dashboard events of %s not published", account_id, exc_info=True)

    async def _tell(self, channel: str, message: dict) -> None:
        try:
            await self.channel_layer.send(channel, message)
        except (ChannelFull, *LAYER_ERRORS):
            logger.warning("could not reach connection %s", channel, exc_info=True)
