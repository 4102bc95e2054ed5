"""The rating worker: `manage.py runworker rating` runs this SyncConsumer.

It decodes a frame of readings, hands it to the rating service, and answers
the device's connection only once the service's transaction has committed.
Whatever goes wrong, it answers `busy` (nothing recorded, resend) rather than
raising: an exception would end runworker and drop every message it holds.
"""

import logging

from asgiref.sync import async_to_sync
from channels.consumer import SyncConsumer
from channels.layers import get_channel_layer

from billing.services import readings_rate
from metering.parsing import BUSY_RETRY_MS, ReadingIn

logger = logging.getLogger(__name__)


class RatingConsumer(SyncConsumer):
    # No channel of its own: it only answers on the devices' channels, and an
    # unused receive on Redis would end the consumer during a Redis outage.
    channel_layer_alias = None

    def rate_readings(self, message: dict) -> None:
        reply_to = message.get("reply_to")
        ids = [reading.get("id") for reading in message.get("readings", [])]
        try:
            readings = [ReadingIn.from_wire(reading) for reading in message["readings"]]
            result = readings_rate(meter_id=message["meter"], readings=readings)
        except Exception:
            logger.exception("rating a frame of %d readings failed; answering busy", len(ids))
            busy = {"type": "rating.busy", "ids": ids, "retry_after_ms": BUSY_RETRY_MS}
            self._reply(reply_to, busy | {"frame": message.get("frame")})
            return
        self._reply(
            reply_to,
            {
                "type": "rating.result",
                "frame": message.get("frame"),
                "ids": result.ids,
                "duplicates": result.duplicates,
                "errors": [error.to_message() for error in result.errors],
            },
        )

    def _reply(self, reply_to: str | None, message: dict) -> None:
        if not reply_to:
            return
        try:
            async_to_sync(get_channel_layer().send)(reply_to, message)
        except Exception:
            # The charges are committed; the device resends and hears "duplicates".
            logger.warning("could not answer %s", reply_to, exc_info=True)
