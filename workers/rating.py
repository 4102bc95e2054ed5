"""The rating worker: `manage.py runworker rating` runs this SyncConsumer.

A message is a batch of device frames from one web process
(metering/batching.py). The worker rates the batch in one transaction,
answers it with one message once that transaction has committed, then
tells the accounts' dashboards.
Whatever goes wrong, it answers `busy` (nothing recorded, resend) rather than
raising: an exception would end runworker and drop every message it holds.
"""

import logging
import os
import time
from collections import defaultdict
from typing import Any

from asgiref.sync import async_to_sync
from channels.consumer import SyncConsumer
from channels.layers import get_channel_layer
from django.conf import settings

from billing.credit_events import outbox_publish
from billing.events import events_publish
from billing.models import Event
from metering.rating import FrameIn, RatingResult, frames_rate
from project.metrics import LAYER_SEND_ERRORS, RATING_BATCH_READINGS, RATING_BATCH_SECONDS
from protocol import ReadingIn

logger = logging.getLogger(__name__)


class RatingConsumer(SyncConsumer):
    # No channel of its own: it only answers on the web processes' channels, and
    # an unused receive on Redis would end the consumer during a Redis outage.
    channel_layer_alias = None

    def rate_batch(self, message: dict) -> None:
        frames = message.get("frames", [])
        batch = message.get("batch")
        started = time.perf_counter()
        try:
            answers, events, outbox = _rate(frames)
        except Exception:
            logger.exception(
                "rating a batch of %d frames failed; rating them alone",
                len(frames),
                extra={"batch": batch},
            )
            answers, events, outbox = _rate_one_by_one(frames)
        RATING_BATCH_SECONDS.observe(time.perf_counter() - started)
        RATING_BATCH_READINGS.observe(sum(len(frame.get("readings", ())) for frame in frames))
        if outbox and settings.METERLINE_FAULT == "crash-after-commit":
            os._exit(137)  # fault injection (tests): as if SIGKILLed between commit and telling
        self._reply(
            message.get("reply_to"),
            {"type": "rating.answers", "batch": batch, "answers": answers},
        )
        events_publish(events)  # committed and answered: now the dashboards
        outbox_publish(outbox)  # alerts, cut-offs: the sweeper tells what a crash leaves

    def _reply(self, reply_to: str | None, message: dict) -> None:
        if not reply_to:
            return
        try:
            async_to_sync(get_channel_layer().send)(reply_to, message)
        except Exception:
            # The charges are committed; the devices resend and hear "duplicates".
            LAYER_SEND_ERRORS.inc()
            logger.warning(
                "could not answer %s", reply_to, exc_info=True, extra={"batch": message["batch"]}
            )


Rated = tuple[list[dict[str, Any]], dict[str, list], list[Event]]


def _rate(frames: list[dict[str, Any]]) -> Rated:
    """Rate frames in wire form in one transaction: their answers in order, the
    dashboard events it committed, by account, and its outbox events."""
    parsed = [
        FrameIn(frame["meter"], [ReadingIn.from_wire(reading) for reading in frame["readings"]])
        for frame in frames
    ]
    batch = frames_rate(parsed)
    answers = [_answer(f["key"], result) for f, result in zip(frames, batch.frames, strict=True)]
    return answers, batch.events, batch.outbox


def _rate_one_by_one(frames: list[dict[str, Any]]) -> Rated:
    """Each frame in a transaction of its own, so that one bad frame cannot hold up
    the rest of its batch; a frame that fails alone is answered busy."""
    answers: list[dict[str, Any]] = []
    events: dict[str, list] = defaultdict(list)
    outbox: list[Event] = []
    for frame in frames:
        try:
            answered, frame_events, frame_outbox = _rate([frame])
        except Exception:
            logger.exception(
                "rating a frame of meter %s failed; answering busy",
                frame.get("meter"),
                extra={"meter": frame.get("meter")},
            )
            answers.append({"key": frame.get("key"), "busy": True})
            continue
        answers += answered
        outbox += frame_outbox
        for account_id, account_events in frame_events.items():
            events[account_id] += account_events
    return answers, events, outbox


def _answer(key: int, result: RatingResult) -> dict[str, Any]:
    return {
        "key": key,
        "ids": result.ids,
        "duplicates": result.duplicates,
        "errors": [error.to_message() for error in result.errors],
    }
