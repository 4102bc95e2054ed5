"""Baseline (a), the naive Channels pattern: one channel message and one ORM save per reading.

    daphne -p 8001 scripts.baselines.naive_channels:application     # the device socket
    python scripts/baselines/naive_channels.py                       # one worker (run two)

As the Channels docs' examples go: an async consumer authenticates the meter with the
ORM, sends every reading of a frame as its own message to a worker channel, and hands
the worker's answer to the device; the worker, a SyncConsumer run by Channels' own
Worker, saves and prices it (saving.py) and answers only after the commit. Speaks
CONTRACT.md section 3 (ack and error, no busy), so scripts/loadgen.py drives it;
HTTP is Meterline's own, for the operator API.
"""

import os
import sys
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script, too
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()

from asgiref.sync import async_to_sync  # noqa: E402
from channels.consumer import SyncConsumer  # noqa: E402
from channels.db import database_sync_to_async  # noqa: E402
from channels.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels.layers import get_channel_layer  # noqa: E402
from channels.routing import ChannelNameRouter, ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from billing.keys import secret_hash  # noqa: E402
from metering.models import Meter  # noqa: E402
from scripts.baselines.saving import baseline_reading_save  # noqa: E402

CHANNEL = "baseline-rating"


class NaiveDeviceConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        token = dict(self.scope["headers"]).get(b"authorization", b"").decode()
        self.meter_id = await database_sync_to_async(
            lambda: (
                Meter.objects.filter(token_hash=secret_hash(token.removeprefix("Bearer ")))
                .values_list("id", flat=True)
                .first()
            )
        )()
        await self.accept()
        if self.meter_id is None:
            await self.close(code=4401)

    async def receive_json(self, content, **kwargs):
        readings = content.get("readings") if content.get("type") == "batch" else [content]
        for reading in readings:
            await self.channel_layer.send(
                CHANNEL,
                {
                    "type": "reading.save",
                    "meter": self.meter_id,
                    "reading": reading,
                    "reply": self.channel_name,
                },
            )

    async def reading_answer(self, message):
        await self.send_json(message["answer"])


class NaiveRatingConsumer(SyncConsumer):
    def reading_save(self, message):
        reading = message["reading"]
        try:
            ts, quantity = datetime.fromisoformat(reading["ts"]), Decimal(reading["quantity"])
        except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
            answer = {"type": "error", "id": reading.get("id"), "code": "invalid_reading"}
            answer["detail"] = str(exc)
        else:
            new = baseline_reading_save(
                meter_id=message["meter"], reading_id=reading["id"], ts=ts, quantity=quantity
            )
            answer = {"type": "ack", "ids": [reading["id"]] if new else []}
            answer["duplicates"] = [] if new else [reading["id"]]
        reply = {"type": "reading.answer", "answer": answer}
        async_to_sync(self.channel_layer.send)(message["reply"], reply)


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter([path("ws/meters/", NaiveDeviceConsumer.as_asgi())]),
        "channel": ChannelNameRouter({CHANNEL: NaiveRatingConsumer.as_asgi()}),
    }
)


def main() -> None:
    """One worker on CHANNEL, as Channels' own `runworker` runs one (Meterline's
    `runworker` replaces that command, so the Worker is started here)."""
    from channels.worker import Worker

    Worker(application=application, channels=[CHANNEL], channel_layer=get_channel_layer()).run()


if __name__ == "__main__":
    main()
