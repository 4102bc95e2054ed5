"""The device client (clients/device.py) against a fake /ws/meters/ server on 127.0.0.1.

The fake answers the n-th frame it receives as the test's script says (an answer
kind, or a close code), and acks every frame after the script's end. It records
the reading ids of each frame, and when each frame and connection came.
"""

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.server import ServerConnection, serve

from clients.device import Backoff, Device, Frame, Refused, meters_url
from protocol import try_again_message

FAST = Backoff(first=0.05, cap=0.2)  # reconnects in well under a second
SLOW = Backoff(first=5.0, cap=5.0, jitter=0)  # a reconnect after it would miss the test's timeout
RETRY_MS = 300


def ack(ids: list[str]) -> dict:
    return {"type": "ack", "ids": ids, "duplicates": []}


def duplicates(ids: list[str]) -> dict:
    return {"type": "ack", "ids": [], "duplicates": ids}


def refusals(ids: list[str]) -> dict:
    """A frame's refusals in one message, the first also in the single shape; its last
    reading refused with a code of its own."""
    items = [{"id": rid, "code": "invalid_reading", "detail": "no"} for rid in ids]
    items[-1] = items[-1] | {"code": "future_timestamp"}
    return {"type": "error", **items[0], "errors": items}


ANSWERS = {
    "ack": lambda ids: [ack(ids)],
    "busy": lambda ids: [{"type": "busy", "ids": ids, "retry_after_ms": RETRY_MS}],
    "silence": lambda ids: [],
    "duplicates": lambda ids: [duplicates(ids)],
    "ack, then duplicates": lambda ids: [ack(ids), duplicates(ids)],
    "error": lambda ids: [
        {"type": "error", "id": rid, "code": "invalid_reading", "detail": "no"} for rid in ids
    ],
    "errors": lambda ids: [refusals(ids)],
    "try again later": lambda ids: [try_again_message(retry_after_ms=400)],
}

# The host going away: the connection dies without a close frame, at once ("drop") or
# by going silent, pings unanswered ("freeze").
DROPS = {
    "drop": lambda transport: transport.abort(),
    "freeze": lambda transport: transport.pause_reading(),
}

# What the fake does with a frame: an answer kind (ANSWERS, DROPS), or a close code.
Action = str | int


class FakeServer:
    def __init__(self, script: tuple[Action, ...]) -> None:
        self.script = list(script)
        self.frames: list[list[str]] = []  # the reading ids of each frame, in order
        self.frame_times: list[float] = []
        self.connections: list[float] = []
        self.credentials: list[str] = []  # each connection's Authorization header, or its path
        self.url = ""

    async def handler(self, ws: ServerConnection) -> None:
        self.connections.append(time.monotonic())
        self.credentials.append(ws.request.headers.get("Authorization") or ws.request.path)
        async for raw in ws:
            frame = json.loads(raw)
            batch = frame["type"] == "batch"
            ids = [r["id"] for r in frame["readings"]] if batch else [frame["id"]]
            self.frames.append(ids)
            self.frame_times.append(time.monotonic())
            action = self.script.pop(0) if self.script else "ack"
            if isinstance(action, int):
                await ws.close(action)
                return
            if action in DROPS:
                DROPS[action](ws.transport)
                continue
            for answer in ANSWERS[action](ids):
                await ws.send(json.dumps(answer))


@contextlib.asynccontextmanager
async def fake_server(
    *script: str | int | tuple[int, str], port: int = 0
) -> AsyncIterator[FakeServer]:
    fake = FakeServer(script)
    async with serve(fake.handler, "127.0.0.1", port) as server:
        bound = server.sockets[0].getsockname()[1]
        fake.url = meters_url(f"http://127.0.0.1:{bound}")
        yield fake


def reading(rid: str) -> dict:
    return {"id": rid, "ts": "2026-11-23T18:30:00Z", "quantity": "0.125"}


async def deliver(device: Device, *frames: list[str], timeout: float = 5.0) -> list[Frame]:
    """Connect, send each list of ids as one frame, and run the device until all are
    answered. (Readings sent before a connection is up would go out together.)"""
    sent: list[Frame] = []

    async def feed() -> None:
        for ids in frames:
            sent.append(await device.send(reading(rid) for rid in ids))

    if device.ws is None:
        await device.connect()
    try:
        await asyncio.wait_for(device.run(feed()), timeout)
    finally:
        await device.close()  # nothing for a device over a connection opened elsewhere
    return sent


async def test_acked_readings_are_recorded_and_the_token_goes_in_the_header():
    async with fake_server() as server:
        device = Device(server.url, "t0ken")
        one, batch = await deliver(device, ["r-1"], ["r-2", "r-3"])
    assert server.frames == [["r-1"], ["r-2", "r-3"]]
    assert one.answers == {"r-1": "ack"} and batch.answers == {"r-2": "ack", "r-3": "ack"}
    assert one.done.done() and batch.done.done()
    outcomes = device.outcomes
    assert set(outcomes.acked) == {"r-1", "r-2", "r-3"} and outcomes.acks == 3
    assert len(outcomes.latencies()) == 3 and all(0 <= s < 5 for s in outcomes.latencies())
    assert outcomes.resent == outcomes.busy == outcomes.reconnects == 0
    assert server.credentials == ["Bearer t0ken"]
    assert device.waiting == {}


async def test_the_token_can_go_in_the_query_string():
    async with fake_server() as server:
        device = Device(meters_url(server.url.removesuffix("/ws/meters/"), "t0ken"))
        await deliver(device, ["r-1"])
    assert server.credentials == ["/ws/meters/?token=t0ken"]


async def test_readings_answered_busy_are_resent_after_retry_after_ms():
    async with fake_server("busy") as server:
        device = Device(server.url, "t")
        [frame] = await deliver(device, ["r-1", "r-2"])
    assert server.frames == [["r-1", "r-2"], ["r-1", "r-2"]]
    waited = server.frame_times[1] - server.frame_times[0]
    assert RETRY_MS / 1000 <= waited < 2, waited
    assert frame.answers == {"r-1": "ack", "r-2": "ack"}
    assert device.outcomes.busy == 1 and device.outcomes.busy_readings == 2
    assert device.outcomes.resent == 0  # busy resends are counted as busy readings


async def test_unanswered_readings_are_resent_after_the_silence_timeout():
    async with fake_server("silence") as server:
        device = Device(server.url, "t", resend_after=0.3)
        [frame] = await deliver(device, ["r-1"])
    assert server.frames == [["r-1"], ["r-1"]]
    assert server.frame_times[1] - server.frame_times[0] >= 0.3
    assert frame.answers == {"r-1": "ack"}
    assert device.outcomes.resent == 1


async def test_unanswered_readings_are_resent_after_a_reconnect():
    async with fake_server(1011) as server:
        device = Device(server.url, "t", backoff=FAST)
        [frame] = await deliver(device, ["r-1", "r-2"])
    assert len(server.connections) == 2
    assert server.frames == [["r-1", "r-2"], ["r-1", "r-2"]]
    assert frame.answers == {"r-1": "ack", "r-2": "ack"}
    assert device.outcomes.close_codes == [1011] and device.outcomes.reconnects == 1
    assert device.outcomes.resent == 2


@pytest.mark.parametrize("code", [4401, 4403])
async def test_no_reconnect_after_the_token_or_meter_is_refused(code):
    async with fake_server(code) as server:
        device = Device(server.url, "t", backoff=FAST)
        with pytest.raises(Refused) as refused:
            await deliver(device, ["r-1"])
        await asyncio.sleep(0.5)  # FAST would have reconnected several times by now
    assert refused.value.code == code
    assert len(server.connections) == 1
    assert device.outcomes.close_codes == [code] and device.outcomes.reconnects == 0
    assert list(device.waiting) == ["r-1"]  # never answered, never charged


async def test_service_restart_reconnects_at_once():
    async with fake_server(1012) as server:
        device = Device(server.url, "t", backoff=SLOW)
        [frame] = await deliver(device, ["r-1"], timeout=2.0)
    assert len(server.connections) == 2
    assert server.connections[1] - server.connections[0] < 1.0
    assert frame.answers == {"r-1": "ack"}
    assert device.outcomes.close_codes == [1012] and device.outcomes.reconnects == 1


async def test_other_drops_wait_for_the_backoff():
    async with fake_server(1011) as server:
        device = Device(server.url, "t", backoff=SLOW)
        with pytest.raises(TimeoutError):
            await deliver(device, ["r-1"], timeout=1.0)
    assert len(server.connections) == 1
    assert device.outcomes.close_codes == [1011]


async def test_readings_are_acked_once_even_when_answered_as_duplicates():
    async with fake_server("ack, then duplicates", "silence", "duplicates") as server:
        device = Device(server.url, "t", resend_after=0.3)
        first, second = await deliver(device, ["r-1", "r-2"], ["r-3"])
    # r-3's first frame went unanswered: its resend is answered as recorded before.
    assert server.frames == [["r-1", "r-2"], ["r-3"], ["r-3"]]
    assert first.answers == {"r-1": "ack", "r-2": "ack"}
    assert second.answers == {"r-3": "duplicate"}
    outcomes = device.outcomes
    assert outcomes.acks == 3 and set(outcomes.acked) == {"r-1", "r-2", "r-3"}
    assert outcomes.duplicates == 3  # r-1 and r-2 listed again, r-3 once
    assert outcomes.late == 2  # the second answers of r-1 and r-2 settle nothing


async def test_an_error_answers_a_reading_for_good():
    async with fake_server("error") as server:
        device = Device(server.url, "t", resend_after=0.2)
        [frame] = await deliver(device, ["r-1"])
        await asyncio.sleep(0.5)
    assert frame.answers == {"r-1": "invalid_reading"}
    assert server.frames == [["r-1"]]
    assert list(device.outcomes.errors) == ["r-1"] and device.outcomes.acks == 0


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_readings_sent_offline_go_out_once_the_server_is_up():
    port = unused_port()
    device = Device(f"ws://127.0.0.1:{port}/ws/meters/", "t", backoff=FAST)
    frames: list[Frame] = []

    async def feed() -> None:
        frames.append(await device.send([reading("r-1")]))

    running = asyncio.create_task(device.run(feed()))
    await asyncio.sleep(0.3)  # a few failed attempts
    assert not running.done() and list(device.waiting) == ["r-1"]
    async with fake_server(port=port) as server:
        await asyncio.wait_for(running, 5)
    assert server.frames == [["r-1"]]
    assert frames[0].answers == {"r-1": "ack"}
    assert device.outcomes.reconnects >= 2 and device.outcomes.resent == 0


async def test_over_a_connection_opened_elsewhere_leaves_it_open():
    async with fake_server() as server:
        device = Device(server.url, "t")
        await device.connect()
        borrowed = Device.over(device.ws)
        [frame] = await deliver(borrowed, ["r-1"])
        assert frame.answers == {"r-1": "ack"}
        await device.ws.send(json.dumps({"type": "reading", **reading("r-2")}))
        assert json.loads(await device.ws.recv()) == ack(["r-2"])
        await device.close()


async def test_one_error_message_answers_each_reading_it_lists():
    async with fake_server("errors") as server:
        device = Device(server.url, "t", resend_after=0.2)
        [frame] = await deliver(device, ["r-1", "r-2", "r-3"])
        await asyncio.sleep(0.5)  # nothing is resent: every one was answered
    assert frame.answers == {
        "r-1": "invalid_reading",
        "r-2": "invalid_reading",
        "r-3": "future_timestamp",
    }
    assert server.frames == [["r-1", "r-2", "r-3"]]
    assert sorted(device.outcomes.errors) == ["r-1", "r-2", "r-3"]


async def test_too_many_refused_frames_reconnects_after_the_longest_backoff():
    backoff = Backoff(first=0.01, cap=0.5, jitter=0)
    async with fake_server(4429) as server:
        device = Device(server.url, "t", backoff=backoff)
        [frame] = await deliver(device, ["r-1"])
    assert len(server.connections) == 2
    assert server.connections[1] - server.connections[0] >= backoff.cap  # not `first`
    assert frame.answers == {"r-1": "ack"}  # resent on the next connection
    assert device.outcomes.close_codes == [4429] and device.outcomes.reconnects == 1


async def test_told_to_try_again_later_it_leaves_and_comes_back_when_the_server_said():
    async with fake_server("try again later") as server:
        device = Device(server.url, "t", backoff=FAST)
        [frame] = await deliver(device, ["r-1"])
    assert len(server.connections) == 2
    assert server.connections[1] - server.connections[0] >= 0.4  # not FAST's backoff
    assert frame.answers == {"r-1": "ack"}  # resent on the next connection
    assert device.outcomes.close_codes == [1000]  # it closed the connection itself
    assert device.outcomes.others["try_again_later"] == 1
