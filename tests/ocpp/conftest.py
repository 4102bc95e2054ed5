"""A charge point for the OCPP tests, and `Link`: its CentralSystem without a socket,
rating inline (or as told), each frame it sends kept for the test."""

import asyncio
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from channels.db import database_sync_to_async

from billing.models import Account
from metering.models import IdTag, Meter
from metering.ocpp.central import CentralSystem
from metering.ocpp.schemas import payload_check
from metering.ocpp.selectors import ChargePoint
from metering.rating import readings_rate
from metering.services import meter_create
from protocol import ReadingIn
from tests.factories import make_account, make_tariff

ID_TAG = "04A2B3C4"


@dataclass
class ChargePointRow:
    account: Account
    meter: Meter
    password: str
    tag: IdTag

    @property
    def identity(self) -> ChargePoint:
        meter = self.meter
        return ChargePoint(meter.id, meter.account_id, meter.charge_point_id, meter.active)


def make_charge_point(charge_point_id: str = "CP-1", *, unit_price: str = "0.30", account=None):
    """An ocpp meter on a per-unit tariff, with one active id tag of its account."""
    account = account or make_account()
    tariff = make_tariff("per_unit", unit_price=unit_price)
    meter, password = meter_create(
        account=account,
        tariff=tariff,
        name=charge_point_id,
        kind="ocpp",
        rollover_at=None,
        charge_point_id=charge_point_id,
    )
    tag, _ = IdTag.objects.get_or_create(account=account, id_tag=ID_TAG)
    return ChargePointRow(account=account, meter=meter, password=password, tag=tag)


@pytest.fixture
async def charge_point() -> ChargePointRow:
    return await database_sync_to_async(make_charge_point)()


def answer_of(readings: Sequence[ReadingIn], meter_id: str) -> dict[str, Any]:
    result = readings_rate(meter_id=meter_id, readings=readings)
    return {
        "ids": result.ids,
        "duplicates": result.duplicates,
        "errors": [error.to_item() for error in result.errors],
    }


class Link:
    """The CentralSystem of one connection; `busy` answers come first if asked for."""

    def __init__(self, charge_point: ChargePoint, *, busy: int = 0) -> None:
        self.sent: asyncio.Queue[list] = asyncio.Queue()
        self.events: list[dict] = []
        self.busy_left = busy
        self.rated: list[list[str]] = []  # reading ids of each frame handed over
        self.ids = itertools.count(1)
        self.central = CentralSystem(
            charge_point=charge_point,
            send=self._send,
            rate_once=self._rate_once,
            publish=self._publish,
        )

    async def _send(self, text: str) -> None:
        await self.sent.put(json.loads(text))

    async def _rate_once(self, readings: Sequence[ReadingIn]) -> dict[str, Any]:
        self.rated.append([reading.id for reading in readings])
        if self.busy_left:
            self.busy_left -= 1
            return {"busy": True}
        meter_id = self.central.charge_point.meter_id
        return await database_sync_to_async(answer_of)(readings, meter_id)

    async def _publish(self, events: list[dict]) -> None:
        self.events.extend(events)

    async def frame(self, text: str, timeout: float = 10) -> list:
        """Send a raw frame; the next frame sent back."""
        self.central.received(text)
        return await asyncio.wait_for(self.sent.get(), timeout)

    async def call(self, action: str, payload: dict[str, Any], timeout: float = 10) -> list:
        """A call as a charge point sends it; the answer ([3, id, payload] or [4, ...])."""
        unique_id = f"c{next(self.ids)}"
        answer = await self.frame(json.dumps([2, unique_id, action, payload]), timeout)
        assert answer[1] == unique_id, answer
        return answer

    async def result(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The CallResult's payload, checked against OCPP 1.6's schema of the answer."""
        answer = await self.call(action, payload)
        assert answer[0] == 3, answer
        payload_check(f"{action}Response", answer[2])
        return answer[2]

    async def close(self) -> None:
        await self.central.close()


@pytest.fixture
async def link(charge_point):
    opened = Link(charge_point.identity)
    yield opened
    await opened.close()
