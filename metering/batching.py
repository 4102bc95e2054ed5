"""Coalescing: the device frames of one web process travel to the rating workers in batches.

A channel message costs about 0.5 ms on channels-redis here, and a database
transaction a millisecond or more, whatever their size. So a web process
does not send each frame on its own. It keeps at most
`METERLINE_BATCHES_IN_FLIGHT` batches with the workers; frames that arrive
meanwhile wait and go together in the next batch as soon as a batch is
answered (group commit). An idle system sends a lone frame at once; a busy
one sends larger batches, never more messages.

Pipelining: an account may have up to `METERLINE_ACCOUNT_BATCHES_IN_FLIGHT`
of those batches out, so that its next batch already waits at a worker while
the one before commits, rather than behind its answer. The account lock
orders them in the workers, and the event numbers dashboards sort by are
taken under it, so two batches of an account commit one after the other in
either order. Delta usage adds up the same in any order; a register does not
(a cumulative meter's usage is the increase over the register before it, and
a decrease is refused), so the frames of a meter that sends registers still
go one batch at a time, in the order they came. Pipelining saves the round
trip between one batch's commit and the next one's start, but a frame that
comes while the account's batches are out then waits behind two of them, not
one, and batches get smaller: on one host (2 workers, 2026-12-04) paced
latency doubled with 2, so the default is 1. It may pay where that round trip
is long (workers on other hosts than Redis).

A worker answers a batch with one message on this process's own channel,
and the answers are handed to the device connections here. A batch whose
answer never comes (the layer lost it, or its worker died) frees its place
after `BATCH_EXPIRY_SECONDS`; its devices hear nothing and resend, which the
`(meter, reading id)` key makes safe.

Memory is bounded whatever the workers do: the process holds at most
`METERLINE_MAX_WAITING_READINGS` readings, from `submit` until they are
answered, and refuses frames beyond (the connection answers them `busy`).
Every frame accepted is answered exactly once: by its worker, or `busy` when
its batch could not be sent or, unanswered, outlived the channel layer's
expiry (then no answer can come and the frame is dropped). So a connection
counts its frames until their answer, with no clock of its own.
"""

import asyncio
import itertools
import logging
import weakref
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer
from django.conf import settings

from project.metrics import LAYER_RECEIVE_ERRORS, LAYER_SEND_ERRORS, WAITING_READINGS
from protocol import LAYER_EXPIRY_SECONDS, RATING_CHANNEL, ReadingIn

logger = logging.getLogger(__name__)

# A batch unanswered this long is taken as lost and its place freed (a batch
# of 5,000 readings is rated in well under a second; if a slow one expires,
# the only cost is one more batch out at once) ...
BATCH_EXPIRY_SECONDS = 5.0
# ... though a late answer still reaches its devices until the channel layer's
# own message expiry (LAYER_EXPIRY_SECONDS), after which none can come: its
# frames are then answered busy.
# Readings in one batch message at most (a frame is never split).
MAX_BATCH_READINGS = 5000

# Called with a frame's answer: {"ids", "duplicates", "errors"} or {"busy": ids}.
Answer = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class _Frame:
    key: int
    meter_id: str
    account_id: str
    readings: list[dict[str, Any]]
    answer: Answer
    registers: bool  # cumulative registers (order-dependent): one batch out per meter


class FrameBatcher:
    """One per web process (and channel layer): see the module docstring."""

    def __init__(self, layer: BaseChannelLayer):
        self.layer = layer
        self.frame_keys = itertools.count(1)
        self.batch_numbers = itertools.count(1)
        self.waiting: deque[_Frame] = deque()  # not yet sent
        self.sent: dict[int, list[_Frame]] = {}  # batch number -> its frames, unanswered
        self.expired: dict[int, list[_Frame]] = {}  # unanswered, no longer holding a place
        self.timers: dict[int, asyncio.TimerHandle] = {}  # batch number -> its expiry
        self.held = 0  # readings of every frame above: submitted and not yet answered
        self.answers_channel: str | None = None
        self._listener: asyncio.Task | None = None
        self._flush_scheduled = False
        self._tasks: set[asyncio.Future] = set()  # held, so the loop does not drop them

    def submit(
        self, meter_id: str, account_id: str, readings: Sequence[ReadingIn], answer: Answer
    ) -> bool:
        """Queue a frame; `answer` is awaited once with its outcome. False, and nothing
        queued, when the frame would take the readings this process holds beyond
        METERLINE_MAX_WAITING_READINGS (one frame alone always fits)."""
        size = len(readings)
        if self.held and self.held + size > settings.METERLINE_MAX_WAITING_READINGS:
            return False
        self.held += size
        wire = [reading.to_wire() for reading in readings]
        registers = any(reading.value is not None for reading in readings)
        key = next(self.frame_keys)
        self.waiting.append(_Frame(key, meter_id, account_id, wire, answer, registers))
        if not self._flush_scheduled:
            # After the frames already readable in this turn of the loop have queued too.
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_later)
        return True

    @property
    def flushing(self) -> bool:
        """Whether a flush is scheduled or under way (submitted frames may not be sent yet)."""
        return self._flush_scheduled or bool(self._tasks)

    def close(self) -> None:
        """Stop listening for answers and drop every batch out (its frames go unanswered)."""
        if self._listener is not None:
            self._listener.cancel()
        for timer in self.timers.values():
            timer.cancel()

    def _flush_later(self) -> None:
        self._flush_scheduled = False
        self._spawn(self.flush())

    def _spawn(self, coroutine) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def flush(self) -> None:
        """Send waiting frames while there are free places for batches."""
        if self.answers_channel is None:
            channel = await self.layer.new_channel()
            if self.answers_channel is None:  # not set by a flush running meanwhile
                self.answers_channel = channel
                self._listener = asyncio.ensure_future(self._listen())
        WAITING_READINGS.set(self.held)  # once a flush, not once a frame
        while self.waiting and len(self.sent) < settings.METERLINE_BATCHES_IN_FLIGHT:
            frames = self._take_batch()
            if not frames:  # every waiting frame's account has a batch out
                return
            batch = next(self.batch_numbers)
            self.sent[batch] = frames
            message = {
                "type": "rate.batch",
                "reply_to": self.answers_channel,
                "batch": batch,
                "frames": [
                    {"key": f.key, "meter": f.meter_id, "readings": f.readings} for f in frames
                ],
            }
            # The expiry is armed first: whatever becomes of the send, the place comes back.
            loop = asyncio.get_running_loop()
            self.timers[batch] = loop.call_later(BATCH_EXPIRY_SECONDS, self._expire, batch)
            try:
                async with asyncio.timeout(BATCH_EXPIRY_SECONDS):
                    await self.layer.send(RATING_CHANNEL, message)
            except Exception as error:
                LAYER_SEND_ERRORS.inc()
                if not isinstance(error, ChannelFull):
                    logger.warning(
                        "could not hand batch %d to the rating workers",
                        batch,
                        exc_info=True,
                        extra={"batch": batch},
                    )
                # Unless a worker answered it meanwhile (sent after all, the send cut off after).
                if self._place_freed(batch) or self.expired.pop(batch, None):
                    await self._answer_all(frames, {"busy": True})

    def _take_batch(self) -> list[_Frame]:
        """The waiting frames for the next batch, in arrival order, at most MAX_BATCH_READINGS
        readings (a frame is never split): none of an account with as many batches out as
        it may have, none of a registers meter with a batch out, and none that would
        overtake an earlier frame of its account (or registers meter) left waiting."""
        accounts, meters = self._out()
        cap = settings.METERLINE_ACCOUNT_BATCHES_IN_FLIGHT
        held = {account for account, batches in accounts.items() if batches >= cap}
        frames, readings, left = [], 0, deque()
        for frame in self.waiting:
            size = len(frame.readings)
            if frame.registers and frame.meter_id in meters:
                left.append(frame)  # its meter's later frames must not overtake it either
                continue
            if frame.account_id in held or (frames and readings + size > MAX_BATCH_READINGS):
                held.add(frame.account_id)  # its later frames must not overtake it
                left.append(frame)
                continue
            frames.append(frame)
            readings += size
        self.waiting = left
        return frames

    def _out(self) -> tuple[Counter[str], set[str]]:
        """The batches out per account, and the registers meters with a batch out."""
        accounts: Counter[str] = Counter()
        meters: set[str] = set()
        for frames in self.sent.values():
            accounts.update({frame.account_id for frame in frames})
            meters.update(frame.meter_id for frame in frames if frame.registers)
        return accounts, meters

    def _place_freed(self, batch: int) -> list[_Frame] | None:
        """Forget batch `batch` as holding a place; its frames, if it still held one."""
        if (timer := self.timers.pop(batch, None)) is not None:
            timer.cancel()
        return self.sent.pop(batch, None)

    def _expire(self, batch: int) -> None:
        frames = self._place_freed(batch)
        if frames is not None:
            logger.warning(
                "rating batch %d unanswered after %.0f s",
                batch,
                BATCH_EXPIRY_SECONDS,
                extra={"batch": batch},
            )
            self.expired[batch] = frames
            loop = asyncio.get_running_loop()
            loop.call_later(LAYER_EXPIRY_SECONDS, self._drop, batch)
            self._spawn(self.flush())

    def _drop(self, batch: int) -> None:
        """No answer to batch `batch` can come now: its frames are answered busy."""
        frames = self.expired.pop(batch, None)
        if frames is not None:
            self._spawn(self._answer_all(frames, {"busy": True}))

    async def _listen(self) -> None:
        """Receive the workers' answers for as long as the process lives."""
        while True:
            try:
                message = await self.layer.receive(self.answers_channel)
            except Exception:
                LAYER_RECEIVE_ERRORS.inc()
                logger.warning("receiving rating answers failed; retrying", exc_info=True)
                await asyncio.sleep(0.5)
                continue
            try:
                await self._answered(message)
            except Exception:
                logger.exception(
                    "handling the answer to rating batch %s failed",
                    message.get("batch"),
                    extra={"batch": message.get("batch")},
                )

    async def _answered(self, message: dict[str, Any]) -> None:
        batch = message.get("batch")
        frames = self._place_freed(batch) or self.expired.pop(batch, None)
        if frames is None:  # answered twice (a message delivered twice), or very late
            return
        try:
            answers = {answer["key"]: answer for answer in message["answers"]}
        except (KeyError, TypeError):  # its frames must still be answered, or held for ever
            logger.exception("a malformed answer to rating batch %s", batch)
            answers = {}
        await self.flush()  # the place just freed goes to the frames waiting
        for frame in frames:
            await self._answer(frame, answers.get(frame.key, {"busy": True}))
        WAITING_READINGS.set(self.held)

    async def _answer_all(self, frames: list[_Frame], answer: dict[str, Any]) -> None:
        for frame in frames:
            await self._answer(frame, answer)
        WAITING_READINGS.set(self.held)

    async def _answer(self, frame: _Frame, answer: dict[str, Any]) -> None:
        """The one answer of a frame: it stops counting against the process here."""
        self.held -= len(frame.readings)
        try:
            await frame.answer(answer)
        except Exception:
            logger.exception(
                "answering a device frame of meter %s failed",
                frame.meter_id,
                extra={"meter": frame.meter_id, "account": frame.account_id},
            )


# Per event loop, per layer: a test may run several of each.
_batchers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def frame_batcher(layer: BaseChannelLayer) -> FrameBatcher:
    """This event loop's batcher for the layer."""
    loop = asyncio.get_running_loop()
    per_layer = _batchers.get(loop)
    if per_layer is None:  # not setdefault: it would make a dictionary on every call
        per_layer = _batchers[loop] = weakref.WeakKeyDictionary()
    if layer not in per_layer:
        per_layer[layer] = FrameBatcher(layer)
    return per_layer[layer]


def frame_batchers_forget() -> None:
    """Stop and drop this event loop's batchers: for tests that flush the layer under them."""
    for batcher in _batchers.pop(asyncio.get_running_loop(), {}).values():
        batcher.close()
