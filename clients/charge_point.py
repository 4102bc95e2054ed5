"""An EV charge point speaking OCPP 1.6-J, built on the `ocpp` package's own ChargePoint
(a real implementation nobody at Meterline wrote), over a `websockets` connection.

    async with charge_point("http://127.0.0.1:8000", "CP-1", password) as cp:
        await cp.call(call.BootNotification(charge_point_model="M", charge_point_vendor="V"))

It accepts every RemoteStopTransaction and keeps its transaction id in
`remote_stops` for whoever drives it (the demo's simulator, the benchmark, the
integration tests). No Django here: it talks to the server only as a charger would.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint as OcppChargePoint
from ocpp.v16 import call_result
from websockets.asyncio.client import connect

SUBPROTOCOL = "ocpp1.6"


def charge_point_url(base: str, charge_point_id: str) -> str:
    """The OCPP socket of the server at `base` (http, https, ws or wss) for a charge point."""
    base = base.rstrip("/")
    for web, socket in (("https://", "wss://"), ("http://", "ws://")):
        if base.startswith(web):
            base = socket + base.removeprefix(web)
    return f"{base}/ocpp/{charge_point_id}"


def basic_authorization(user: str, password: str) -> str:
    """OCPP security profile 1: HTTP Basic with the charge point id and its password."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def timestamp(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).astimezone(UTC).isoformat().replace("+00:00", "Z")


def register(wh: int | str, at: datetime | str, context: str = "Sample.Periodic") -> dict:
    """One meterValue of the energy register, in the ocpp package's snake_case."""
    return {
        "timestamp": at if isinstance(at, str) else timestamp(at),
        "sampled_value": [
            {
                "value": str(wh),
                "context": context,
                "measurand": "Energy.Active.Import.Register",
                "unit": "Wh",
            }
        ],
    }


class ChargePoint(OcppChargePoint):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.remote_stops: asyncio.Queue[int] = asyncio.Queue()

    @on("RemoteStopTransaction")
    async def on_remote_stop_transaction(self, transaction_id: int, **kwargs: Any):
        self.remote_stops.put_nowait(transaction_id)
        return call_result.RemoteStopTransaction(status="Accepted")


@contextlib.asynccontextmanager
async def charge_point(
    base: str,
    charge_point_id: str,
    password: str | None,
    *,
    user: str | None = None,
    subprotocols: tuple[str, ...] = (SUBPROTOCOL,),
    response_timeout: float = 30,
) -> AsyncIterator[ChargePoint]:
    """A connected charge point, listening, until the block ends; `user` defaults to its id."""
    headers = {}
    if password is not None:
        headers["Authorization"] = basic_authorization(user or charge_point_id, password)
    async with connect(
        charge_point_url(base, charge_point_id),
        subprotocols=list(subprotocols) or None,
        additional_headers=headers,
        open_timeout=10,
    ) as ws:
        cp = ChargePoint(charge_point_id, ws, response_timeout=response_timeout)
        listening = asyncio.ensure_future(cp.start())
        try:
            yield cp
        finally:
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await listening
