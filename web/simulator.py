"""A fleet of simulated delta meters: real WebSocket clients of the device protocol.

Each meter sends a reading every 1/rate seconds, keeps what is not acked and
resends it (after `busy`'s retry time, or after RESEND_AFTER seconds without
an answer), and reconnects with backoff when the connection drops. No Django
here: it talks to the server only as a device would.
"""

import asyncio
import json
import logging
import random
import uuid
from datetime import UTC, datetime

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

logger = logging.getLogger(__name__)

RESEND_AFTER = 10.0
MAX_BACKOFF = 15.0
# Close codes after which reconnecting cannot help (token revoked, meter disabled).
FINAL_CODES = {4401, 4403}


def ws_url(base: str) -> str:
    """ws(s)://host/ws/meters/ from an http(s) base URL."""
    base = base.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base.removeprefix("https://")
    elif base.startswith("http://"):
        base = "ws://" + base.removeprefix("http://")
    return f"{base}/ws/meters/"


class SimulatedMeter:
    def __init__(self, *, meter_id: str, token: str, url: str, rate: float) -> None:
        self.meter_id = meter_id
        self.token = token
        self.url = url
        self.interval = 1 / rate
        self.unacked: dict[str, tuple[dict, float]] = {}  # id -> (reading, last sent)
        self.acked = 0

    def next_reading(self) -> dict:
        # A household-sized draw with some noise: 0.05 to 0.6 kWh a reading.
        quantity = f"{random.uniform(0.05, 0.6):.3f}"
        moment = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        return {"type": "reading", "id": uuid.uuid4().hex, "ts": moment, "quantity": quantity}

    async def run(self) -> None:
        attempt = 0
        headers = {"Authorization": f"Bearer {self.token}"}
        while True:
            try:
                async with connect(self.url, additional_headers=headers, open_timeout=10) as ws:
                    attempt = 0
                    logger.info("%s connected", self.meter_id)
                    await self._session(ws)
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd is not None else None
                if code in FINAL_CODES:
                    logger.error("%s closed with %s: stopping", self.meter_id, code)
                    return
                logger.warning("%s disconnected (%s)", self.meter_id, code)
            except (OSError, InvalidStatus, TimeoutError) as error:
                logger.warning("%s cannot connect: %s", self.meter_id, error)
            attempt += 1
            await asyncio.sleep(min(MAX_BACKOFF, 0.5 * 2**attempt) * random.uniform(0.75, 1.25))

    async def _session(self, ws) -> None:
        loop = asyncio.get_running_loop()
        # What was never acked before the drop goes again first (the id dedupes it).
        for rid, (message, _) in list(self.unacked.items()):
            await ws.send(json.dumps(message))
            self.unacked[rid] = (message, loop.time())
        sender = asyncio.create_task(self._send_loop(ws))
        try:
            async for raw in ws:
                await self._on_reply(ws, json.loads(raw))
        finally:
            sender.cancel()

    async def _send_loop(self, ws) -> None:
        loop = asyncio.get_running_loop()
        while True:
            message = self.next_reading()
            self.unacked[message["id"]] = (message, loop.time())
            await ws.send(json.dumps(message))
            stale = [m for m, sent in self.unacked.values() if loop.time() - sent > RESEND_AFTER]
            for message in stale:
                self.unacked[message["id"]] = (message, loop.time())
                await ws.send(json.dumps(message))
            await asyncio.sleep(self.interval * random.uniform(0.7, 1.3))

    async def _on_reply(self, ws, reply: dict) -> None:
        kind = reply.get("type")
        if kind == "ack":
            for rid in [*reply.get("ids", []), *reply.get("duplicates", [])]:
                if self.unacked.pop(rid, None) is not None:
                    self.acked += 1
        elif kind == "busy":
            await asyncio.sleep(reply.get("retry_after_ms", 500) / 1000)
            for rid in reply.get("ids", []):
                if rid in self.unacked:
                    await ws.send(json.dumps(self.unacked[rid][0]))
        elif kind == "error":
            logger.warning("%s: %s", self.meter_id, reply)
            self.unacked.pop(reply.get("id"), None)


async def simulate(*, tokens: dict[str, str], url: str, rate: float) -> None:
    meters = [
        SimulatedMeter(meter_id=meter_id, token=token, url=url, rate=rate)
        for meter_id, token in tokens.items()
    ]
    await asyncio.gather(*(meter.run() for meter in meters))
