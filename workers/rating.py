"""The rating worker: `manage.py runworker rating` runs this SyncConsumer.

A message is a batch of device frames from one web process
(metering/batching.py). The worker rates the batch in one transaction and
answers it with one message, only once that transaction has committed.
Whatever goes wrong, it answers `busy` (nothing recorded, resend) rather than
raising: an exception would end runworker and drop every message it holds.
"""

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.consumer import SyncConsumer
from channels.layers import get_channel_layer

from billing.services import FrameIn, RatingResult, frames_rate
from metering.parsing import ReadingIn

logger = logging.getLogger(__name__)


class RatingConsumer(SyncConsumer):
    # No channel of its own: it only answers on the web processes' channels, and
    # an unused receive on Redis would end the consumer during a Redis outage.
    channel_layer_alias = None

    def rate_batch(self, message: dict) -> None:
        frames = message.get("frames", [])
        try:
            answers = _rate(frames)
        except Exception:
            # One frame's trouble must not hold up the others: try each alone.
            logger.exception(
                "rating a batch of %d frames failed; rating them one by one", len(frames)
            )
            answers = []
            for frame in frames:
                try:
                    answers += _rate([frame])
                except Exception:
                    logger.exception(
                        "rating a frame of meter %s failed; answering busy", frame.get("meter")
                    )
                    answers.append({"key": frame.get("key"), "busy": True})
        self._reply(
            message.get("reply_to"),
            {"type": "rating.answers", "batch": message.get("batch"), "answers": answers},
        )

    def _reply(self, reply_to: str | None, message: dict) -> None:
        if not reply_to:
            return
        try:
            async_to_sync(get_channel_layer().send)(reply_to, message)
        except Exception:
            # The charges are committed; the devices resend and hear "duplicates".
            logger.warning("could not answer %s", reply_to, exc_info=True)


def _rate(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rate frames in wire form in one transaction; their answers, in order."""
    parsed = [
        FrameIn(frame["meter"], [ReadingIn.from_wire(reading) for reading in frame["readings"]])
        for frame in frames
    ]
    results = frames_rate(parsed).frames
    return [_answer(frame["key"], result) for frame, result in zip(frames, results, strict=True)]


def _answer(key: int, result: RatingResult) -> dict[str, Any]:
    return {
        "key": key,
        "ids": result.ids,
        "duplicates": result.duplicates,
        "errors": [error.to_message() for error in result.errors],
    }
