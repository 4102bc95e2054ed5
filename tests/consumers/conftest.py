"""Consumers tested with channels' communicators on the (serializing) in-memory layer."""

import asyncio

import pytest
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import ApplicationCommunicator, WebsocketCommunicator

from metering.batching import frame_batcher, frame_batchers_forget
from metering.fanout import dashboard_hubs_forget
from protocol import RATING_CHANNEL
from routing.websocket import websocket_urlpatterns
from workers.rating import RatingConsumer

websocket_app = URLRouter(websocket_urlpatterns)


@pytest.fixture(autouse=True)
async def empty_layer():
    """Each test starts with no queued messages, no groups and no batches out."""
    await layer_emptied()
    yield
    await layer_emptied()


async def layer_emptied() -> None:
    await get_channel_layer().flush()
    frame_batchers_forget()  # their batches and answer channel went with the flush
    dashboard_hubs_forget()  # and the dashboard hubs' groups


def device(token: str | None = None, *, query: str = "") -> WebsocketCommunicator:
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    return WebsocketCommunicator(websocket_app, f"/ws/meters/{query}", headers=headers)


def dashboard(
    account_id: str, token: str | None = None, *, via: str = "query"
) -> WebsocketCommunicator:
    """A dashboard connection with `token` in `?token=` (via "query") or in the
    Authorization header (via "header"), where operator keys must go."""
    path = f"/ws/accounts/{account_id}/"
    if token and via == "header":
        headers = [(b"authorization", f"Bearer {token}".encode())]
        return WebsocketCommunicator(websocket_app, path, headers=headers)
    query = f"?token={token}" if token else ""
    return WebsocketCommunicator(websocket_app, f"{path}{query}")


async def frames_handed_on(timeout: float = 5) -> None:
    """Wait until this loop's batcher has sent what it can of the frames submitted so far."""
    batcher = frame_batcher(get_channel_layer())
    async with asyncio.timeout(timeout):
        while batcher.flushing:
            await asyncio.sleep(0.001)


async def rate_next_frame(timeout: float = 5) -> ApplicationCommunicator:
    """What a runworker does with one message: take it off `rating`, hand it to the consumer."""
    message = await asyncio.wait_for(get_channel_layer().receive(RATING_CHANNEL), timeout)
    return await rate_message(message)


async def rate_message(message: dict) -> ApplicationCommunicator:
    """Hand a batch message to a rating consumer.

    The caller stops the returned communicator once it has heard the answer.
    """
    worker = ApplicationCommunicator(
        RatingConsumer.as_asgi(), {"type": "channel", "channel": RATING_CHANNEL}
    )
    await worker.send_input(message)
    return worker


async def closed_with(communicator: WebsocketCommunicator) -> int:
    """Connect, and return the close code the server answers with."""
    connected, _ = await communicator.connect()
    assert connected, "the server accepts before closing, so the client sees the code"
    output = await communicator.receive_output(timeout=2)
    assert output["type"] == "websocket.close"
    return output["code"]
