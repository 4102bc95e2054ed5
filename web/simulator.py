"""A fleet of simulated delta meters: real devices of the protocol (clients/device.py).

Each meter makes a reading every 1/rate seconds and hands it to its device,
which does the rest as the contract asks: it keeps what is not acked and
resends it (after `busy`'s retry time, after RESEND_AFTER seconds without an
answer, after a reconnect), keeps readings made while offline for the next
connection, reconnects with backoff, and stops for good when the server refuses
the token (4401) or the meter (4403). No Django here: it talks to the server
only as a device would.
"""

import asyncio
import logging
import random
import uuid
from datetime import UTC, datetime

from clients.device import Device, Outcomes, Refused

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


async def simulate(*, tokens: dict[str, str], url: str, rate: float) -> None:
    meters = [
        SimulatedMeter(meter_id=meter_id, token=token, url=url, rate=rate)
        for meter_id, token in tokens.items()
    ]
    await asyncio.gather(*(meter.run() for meter in meters))
