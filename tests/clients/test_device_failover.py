"""The device client's failover (clients/device.py): given several URLs it uses the first
until a connection there cannot be opened or is lost without the server closing it,
then the next, in turn; a server that closes the connection itself keeps its URL.

The servers are test_device.py's fakes, each scripted on its own.
"""

import asyncio

from clients.device import Backoff, Device
from tests.clients.test_device import FAST, deliver, fake_server, reading, unused_port

# Pings every 0.1 s, given up on after 0.3 s, and no more than 0.3 s spent closing what
# is lost: a silent host is noticed and left within a second.
QUICK_PINGS = {"ping_interval": 0.1, "ping_timeout": 0.3, "close_timeout": 0.3}


def dead_url() -> str:
    return f"ws://127.0.0.1:{unused_port()}/ws/meters/"


async def test_a_url_that_cannot_be_opened_fails_over_to_the_next():
    async with fake_server() as server:
        device = Device([dead_url(), server.url], "t", backoff=FAST)

        async def feed() -> None:
            await device.send([reading("r-1")])

        await asyncio.wait_for(device.run(feed()), 5)  # run() connects: not deliver()
    assert frame_answers(device) == {"r-1": "ack"}
    assert server.frames == [["r-1"]]
    assert device.url == server.url and device.outcomes.reconnects == 1


async def test_a_connection_lost_without_a_close_frame_fails_over_and_resends_there():
    opened: list[str] = []
    async with fake_server("drop") as first, fake_server() as second:
        device = Device(
            [first.url, second.url], "t", backoff=FAST, on_open=lambda d: opened.append(d.url)
        )
        await deliver(device, ["r-1", "r-2"])
    assert first.frames == [["r-1", "r-2"]] and second.frames == [["r-1", "r-2"]]
    assert frame_answers(device) == {"r-1": "ack", "r-2": "ack"}
    assert device.outcomes.close_codes == [None] and device.outcomes.resent == 2
    # deliver() opened the first connection itself; the device opened the second.
    assert opened == [second.url] and device.url == second.url


async def test_a_host_gone_silent_is_noticed_by_its_pings_and_failed_over():
    async with fake_server("freeze") as first, fake_server() as second:
        device = Device([first.url, second.url], "t", backoff=FAST, **QUICK_PINGS)
        await deliver(device, ["r-1"])
    assert first.frames == [["r-1"]] and second.frames == [["r-1"]]
    assert frame_answers(device) == {"r-1": "ack"}
    assert device.url == second.url


async def test_a_server_that_closes_the_connection_keeps_its_url():
    async with fake_server(1012) as first, fake_server() as second:
        device = Device([first.url, second.url], "t", backoff=FAST)
        await deliver(device, ["r-1"])
    assert first.frames == [["r-1"], ["r-1"]] and second.frames == []
    assert device.outcomes.close_codes == [1012] and device.url == first.url


async def test_after_the_last_url_the_first_is_tried_again():
    slow = Backoff(first=0.05, cap=0.05)
    async with fake_server("drop") as first, fake_server("drop") as second:
        device = Device([first.url, second.url], "t", backoff=slow)
        await deliver(device, ["r-1"])
    assert first.frames == [["r-1"], ["r-1"]] and second.frames == [["r-1"]]
    assert frame_answers(device) == {"r-1": "ack"} and device.url == first.url
    assert device.outcomes.reconnects == 2


def frame_answers(device: Device) -> dict[str, str]:
    """What the device's readings were answered: acked ids as "ack", from its outcomes."""
    return {rid: "ack" for rid in device.outcomes.acked}
