"""Test-side helpers for the integration tests, on the real stack of devtools/stack.py.

Readings and frames, WebSocket connections opened by hand (`connect_device`,
`connect_dashboard`, `recv_json`, `expect_close`...), and two devices built on
clients/device.py: `Device(ws).deliver(...)` on a connection a test opened, and
`stream(...)`, a device that delivers thousands of readings through whatever
fails, for the fault, serve and sharded-layer tests.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from clients.device import Backoff, Frame, Outcomes
from clients.device import Device as DeviceClient

# The harness's names, still imported from here by tests/conftest.py, tests/postgres.py
# and tests/integration/conftest.py; tests import them from devtools.stack.
from devtools.stack import Stack

# Generous: the first ack on a fresh stack pays for imports and connections.
ACK_TIMEOUT = 20.0
SIX_DP = Decimal("0.000001")


def make_stack(database: str = "postgres") -> Stack:
    return Stack(tmp=Path(tempfile.mkdtemp(prefix="meterline-itests-")), database=database)


def money(value: Decimal | str | int) -> str:
    """A money amount as the API shows it: a decimal string with 6 places."""
    return f"{Decimal(value).quantize(SIX_DP):f}"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def ts_ago(seconds: float = 0) -> str:
    """A reading timestamp `seconds` before now, in the open period."""
    return iso(datetime.now(UTC) - timedelta(seconds=seconds))


# --- Readings ------------------------------------------------------------------


def reading(
    rid: str, quantity: str | None = None, *, value: str | None = None, ts: str | None = None
) -> dict:
    message: dict[str, Any] = {"type": "reading", "id": rid, "ts": ts or ts_ago(1)}
    if quantity is not None:
        message["quantity"] = quantity
    if value is not None:
        message["value"] = value
    return message


def batch(readings: Iterable[dict]) -> dict:
    return {
        "type": "batch",
        "readings": [{k: v for k, v in r.items() if k != "type"} for r in readings],
    }


def chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- WebSocket clients -----------------------------------------------------------


def device_url(stack: Stack, token: str | None = None) -> str:
    url = f"{stack.ws_base}/ws/meters/"
    return f"{url}?{urllib.parse.urlencode({'token': token})}" if token is not None else url


def dashboard_url(stack: Stack, account: str, token: str | None = None) -> str:
    url = f"{stack.ws_base}/ws/accounts/{account}/"
    return f"{url}?{urllib.parse.urlencode({'token': token})}" if token is not None else url


def connect_device(stack: Stack, token: str | None, *, via: str = "header"):
    """An async context manager: a device connection authenticated by header or query."""
    from websockets.asyncio.client import connect

    if via == "header":
        headers = {"Authorization": f"Bearer {token}"} if token is not None else None
        return connect(
            device_url(stack), additional_headers=headers, open_timeout=10, max_size=None
        )
    return connect(device_url(stack, token), open_timeout=10, max_size=None)


def connect_dashboard(stack: Stack, account: str, token: str | None, *, via: str = "header"):
    """A dashboard connection with `token` in the Authorization header (where operator keys
    must go) or, via "query", in `?token=` (dashboard keys only)."""
    from websockets.asyncio.client import connect

    if via == "header":
        headers = {"Authorization": f"Bearer {token}"} if token is not None else None
        return connect(
            dashboard_url(stack, account),
            additional_headers=headers,
            open_timeout=10,
            max_size=None,
        )
    return connect(dashboard_url(stack, account, token), open_timeout=10, max_size=None)


async def recv_json(ws, timeout: float = ACK_TIMEOUT) -> dict:
    raw = await asyncio.wait_for(ws.recv(), timeout)
    return json.loads(raw)


async def send_json(ws, message: Any) -> None:
    await ws.send(json.dumps(message))


async def recv_until(
    ws, predicate, *, timeout: float = ACK_TIMEOUT, seen: list | None = None
) -> dict:
    """Receive messages until one matches `predicate`; the others go to `seen`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError(f"no matching message within {timeout}s; got {seen}")
        message = await recv_json(ws, remaining)
        if predicate(message):
            return message
        if seen is not None:
            seen.append(message)


async def expect_close(ws, code: int | tuple[int, ...], timeout: float = 10.0) -> None:
    """The server closes this connection with `code` (any messages before are ignored)."""
    codes = code if isinstance(code, tuple) else (code,)
    from websockets.exceptions import ConnectionClosed

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    received = []
    try:
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"connection not closed within {timeout}s; got {received}")
            received.append(await asyncio.wait_for(ws.recv(), remaining))
    except ConnectionClosed as exc:
        got = exc.rcvd.code if exc.rcvd is not None else None
        assert got in codes, f"closed with {got} ({exc}), expected {code}"


async def expect_refused(connector, code: int | tuple[int, ...], timeout: float = 10.0) -> None:
    """Connecting succeeds at the WebSocket level, then the server closes with `code`."""
    from websockets.exceptions import InvalidStatus

    try:
        async with connector as ws:
            await expect_close(ws, code, timeout)
    except InvalidStatus as exc:
        raise AssertionError(
            f"handshake rejected with HTTP {exc.response.status_code}; "
            f"the contract wants an accepted connection closed with {code}"
        ) from exc


RESEND_AFTER = 10.0


class Device:
    """A device on a connection the test opened (clients.device does the work): `deliver`
    resends after `busy` and after RESEND_AFTER seconds without an answer, as the
    contract asks of devices, and leaves the connection open for the test."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.client = DeviceClient.over(ws, name="test device", resend_after=RESEND_AFTER)

    @property
    def outcomes(self) -> Outcomes:
        return self.client.outcomes

    async def deliver(self, messages: list[dict], timeout: float = 60.0) -> dict[str, str]:
        """Send reading/batch messages, one frame each, and wait until every reading is
        answered. Returns {reading id: "ack" | "duplicate" | error code}."""
        frames: list[Frame] = []

        async def feed() -> None:
            for message in messages:
                readings = [message] if message["type"] == "reading" else message["readings"]
                frames.append(await self.client.send(readings))

        try:
            await asyncio.wait_for(self.client.run(feed()), timeout)
        except TimeoutError:
            waiting = sorted(self.client.waiting)
            raise TimeoutError(
                f"{len(waiting)} readings unanswered after {timeout}s: {waiting[:10]}"
            ) from None
        return {rid: answer for frame in frames for rid, answer in frame.answers.items()}


def charges_by_reading(charges: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for charge in charges:
        out.setdefault(charge["reading_id"], []).append(charge)
    return out


# --- A device streaming through faults ---------------------------------------------

STREAM_FRAME = 10  # readings a frame
STREAM_WINDOW = 8  # frames in flight
STREAM_ANSWER_TIMEOUT = 10.0  # resend a reading unanswered this long
STREAM_DEADLINE = 240.0
STREAM_BACKOFF = Backoff(first=0.3, cap=5.0)  # restarts take seconds here: come back soon


@dataclass
class StreamStats(Outcomes):
    """What one streaming device went through (clients.device.Outcomes)."""

    def describe(self, total: int) -> str:
        quiet = time.monotonic() - self.last_answer
        return (
            f"{total - len(self.acked)} unacked, resent {self.resent}, reconnects "
            f"{self.reconnects}, busy {self.busy}; last answer ({self.last_kind}) {quiet:.0f} s ago"
        )


async def stream(
    stack: Stack, token: str, prefix: str, stats: StreamStats, *, count: int, pace: float = 0
) -> None:
    """Deliver `count` readings of quantity 1 through whatever happens, as the contract
    asks of a device: resend whatever has no ack after a reconnect, a timeout or a `busy`.
    `pace`: seconds between frames (0: as fast as the window allows)."""
    device = DeviceClient(
        device_url(stack),
        token,
        name=prefix,
        resend_after=STREAM_ANSWER_TIMEOUT,
        backoff=STREAM_BACKOFF,
        outcomes=stats,
        max_size=None,
    )
    window = asyncio.Semaphore(STREAM_WINDOW)

    async def feed() -> None:
        for start in range(0, count, STREAM_FRAME):
            await window.acquire()
            ids = range(start, min(count, start + STREAM_FRAME))
            readings = [{"id": f"{prefix}-{i}", "ts": ts_ago(), "quantity": "1"} for i in ids]
            frame = await device.send(readings)
            frame.done.add_done_callback(lambda _: window.release())
            if pace:
                await asyncio.sleep(pace)

    try:
        await asyncio.wait_for(device.run(feed()), STREAM_DEADLINE)
    except TimeoutError:
        raise AssertionError(f"{prefix}: {stats.describe(count)}") from None


def assert_charged_once(
    stack: Stack, account: str, stats: list[StreamStats], *, per_device: int, unit_price: Decimal
) -> list[dict]:
    """Every streamed reading (quantity 1) acked and charged exactly once, the money exact
    to the last decimal. Returns the account's charges."""
    charges = stack.charges(account)
    assert len(charges) == len(stats) * per_device
    assert len({(c["meter"], c["reading_id"]) for c in charges}) == len(charges), "doubled"
    expected = unit_price * len(charges)
    assert sum(Decimal(c["amount"]) for c in charges) == expected
    assert Decimal(stack.usage(account)["total"]) == expected
    for s in stats:
        assert len(s.acked) == per_device, s.describe(per_device)
        assert not s.errors and not s.frame_errors, s.describe(per_device)
    return charges
