"""A fleet of simulated delta meters: real devices of the protocol (clients/device.py),
and EV charge points speaking OCPP 1.6-J (clients/charge_point.py, the ocpp package).

Each meter makes a reading every 1/rate seconds and hands it to its device,
which does the rest as the contract asks: it keeps what is not acked and
resends it (after `busy`'s retry time, after RESEND_AFTER seconds without an
answer, after a reconnect), keeps readings made while offline for the next
connection, reconnects with backoff, and stops for good when the server refuses
the token (4401) or the meter (4403).

A charge point boots, then charges session after session: Authorize, StartTransaction,
MeterValues of its energy register every few seconds at 11 kW, StopTransaction after a
couple of minutes, or at once when the server sends RemoteStopTransaction (an
operator's stop, a cut-off). A call whose connection drops is made again after the
reconnect, as a charger resends its transaction messages. No Django here: it talks to
the server only as a device would.
"""

import asyncio
import logging
import random
import uuid
from datetime import UTC, datetime

from ocpp.exceptions import OCPPError
from ocpp.v16 import call
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from clients.charge_point import ChargePoint, charge_point, register, timestamp
from clients.device import Backoff, Device, Outcomes, Refused
from protocol import CLOSE_FINAL

logger = logging.getLogger(__name__)

PROGRESS_EVERY = 10.0  # seconds between a meter's "acked so far" log lines


class SimulatedMeter:
    def __init__(self, *, meter_id: str, token: str, url: str, rate: float) -> None:
        """`url`: the server's device socket (clients.device.meters_url)."""
        self.meter_id = meter_id
        self.interval = 1 / rate
        # Counts only: a demo may run for days.
        self.device = Device(url, token, name=meter_id, outcomes=Outcomes(keep_ids=False))

    def next_reading(self) -> dict:
        # A household-sized draw with some noise: 0.05 to 0.6 kWh a reading.
        quantity = f"{random.uniform(0.05, 0.6):.3f}"
        moment = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        return {"id": uuid.uuid4().hex, "ts": moment, "quantity": quantity}

    async def run(self) -> None:
        try:
            await self.device.run(self._read_the_meter())
        except Refused as refused:
            logger.error("%s stopped: %s", self.meter_id, refused)

    async def _read_the_meter(self) -> None:
        loop = asyncio.get_running_loop()
        next_progress = loop.time() + PROGRESS_EVERY
        while True:
            await self.device.send([self.next_reading()])
            if loop.time() >= next_progress:
                next_progress += PROGRESS_EVERY
                outcomes = self.device.outcomes
                logger.info(
                    "%s: %d readings acked, %d waiting, %d errors",
                    self.meter_id,
                    outcomes.acks,
                    len(self.device.waiting),
                    len(outcomes.errors),
                )
            await asyncio.sleep(self.interval * random.uniform(0.7, 1.3))


# A charge point's power and how often it reports its register, how long a session
# lasts and the pause between sessions (a demo's pace, not a driver's).
CHARGING_WATTS = 11_000
METER_VALUES_EVERY = 3.0
SESSION_SECONDS = 120.0
BETWEEN_SESSIONS = 15.0


class SimulatedChargePoint:
    """One charger: its register in Wh, and the call it is making (made again after a
    reconnect until it is answered)."""

    def __init__(
        self,
        *,
        charge_point_id: str,
        password: str,
        base: str,
        id_tag: str,
        session_seconds: float = SESSION_SECONDS,
    ) -> None:
        self.charge_point_id, self.password, self.base = charge_point_id, password, base
        self.id_tag, self.session_seconds = id_tag, session_seconds
        self.register_wh = random.randint(1_000_000, 9_000_000)
        self.backoff = Backoff()
        self.cp: ChargePoint | None = None
        self.connected = asyncio.Event()

    async def run(self) -> None:
        """Stay connected, and charge, until the server refuses the password."""
        charging = asyncio.ensure_future(self._charge_for_ever())
        failures = 0
        try:
            while True:
                try:
                    code = await self._connected_until_closed()
                    failures = 0
                except ConnectionClosed as closed:  # while booting
                    code, failures = closed.rcvd and closed.rcvd.code, failures + 1
                except (OSError, InvalidHandshake, TimeoutError) as error:
                    logger.info("%s: cannot connect (%s)", self.charge_point_id, error)
                    code, failures = None, failures + 1
                self.connected.clear()
                if code in CLOSE_FINAL:  # its password rotated, or the meter disabled
                    logger.error("%s stopped: refused (%d)", self.charge_point_id, code)
                    return
                await asyncio.sleep(self.backoff.delay(failures))
        finally:
            charging.cancel()

    async def _connected_until_closed(self) -> int | None:
        """Boot, and let the calls go until the connection closes; its close code."""
        async with charge_point(self.base, self.charge_point_id, self.password) as self.cp:
            await self.cp.call(call.BootNotification("Simulator", "Meterline"), suppress=False)
            self.connected.set()
            await self.cp._connection.wait_closed()
            return self.cp._connection.close_code

    async def _call(self, payload):
        """Make the call, again after each reconnect, until it is answered."""
        while True:
            await self.connected.wait()
            try:
                return await self.cp.call(payload, suppress=False)
            except (ConnectionClosed, TimeoutError):
                await asyncio.sleep(0.5)
            except OCPPError as error:
                logger.warning("%s: %s answered %s", self.charge_point_id, payload, error)
                await asyncio.sleep(5)

    async def _status(self, status: str) -> None:
        await self._call(call.StatusNotification(1, "NoError", status, timestamp=timestamp()))

    async def _charge_for_ever(self) -> None:
        while True:
            await self._status("Available")
            await asyncio.sleep(
                min(BETWEEN_SESSIONS, self.session_seconds) * random.uniform(0.5, 1.5)
            )
            authorized = await self._call(call.Authorize(self.id_tag))
            if authorized.id_tag_info["status"] != "Accepted":
                logger.info("%s: %s is %s", self.charge_point_id, self.id_tag, authorized)
                continue
            await self._status("Preparing")
            await self._session()

    async def _session(self) -> None:
        start = call.StartTransaction(1, self.id_tag, self.register_wh, timestamp())
        transaction_id = (await self._call(start)).transaction_id
        logger.info("%s: charging, transaction %d", self.charge_point_id, transaction_id)
        await self._status("Charging")
        loop = asyncio.get_running_loop()
        ends, reason = loop.time() + self.session_seconds, "EVDisconnected"
        while loop.time() < ends:
            await asyncio.sleep(METER_VALUES_EVERY)
            self.register_wh += round(CHARGING_WATTS * METER_VALUES_EVERY / 3600)
            sample = register(self.register_wh, timestamp())
            await self._call(call.MeterValues(1, [sample], transaction_id))
            if self.cp is not None and not self.cp.remote_stops.empty():
                self.cp.remote_stops.get_nowait()
                reason = "Remote"
                break
        await self._call(
            call.StopTransaction(self.register_wh, timestamp(), transaction_id, reason=reason)
        )
        await self._status("Finishing")


async def simulate(
    *,
    tokens: dict[str, str],
    url: str,
    rate: float,
    base: str = "",
    charge_points: dict[str, str] | None = None,
    id_tag: str = "",
    session_seconds: float = SESSION_SECONDS,
) -> None:
    """`tokens`: {meter id: device token}; `charge_points`: {charge point id: password},
    charging against `base` (the server's http URL) with `id_tag`."""
    meters = [
        SimulatedMeter(meter_id=meter_id, token=token, url=url, rate=rate)
        for meter_id, token in tokens.items()
    ]
    chargers = [
        SimulatedChargePoint(
            charge_point_id=cp_id,
            password=password,
            base=base,
            id_tag=id_tag,
            session_seconds=session_seconds,
        )
        for cp_id, password in (charge_points or {}).items()
    ]
    await asyncio.gather(*(meter.run() for meter in meters), *(c.run() for c in chargers))
