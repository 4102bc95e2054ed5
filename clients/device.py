"""A Meterline device: a small client of the device WebSocket protocol (CONTRACT.md, section 3).

    device = Device(meters_url("https://meterline.example"), token)

    async def feed() -> None:
        await device.send([{"id": "r-1", "ts": "2026-11-23T18:30:00Z", "quantity": "0.125"}])

    await device.run(feed())  # returns once every reading sent has its answer

The device keeps each reading it sends until the server answers it, and sends it
again after `busy`'s retry time, after `resend_after` seconds without an answer
and after a reconnect: the reading's id makes every resend harmless. Readings
sent while it is offline wait for the next connection, as a meter buffers them.
It reconnects with exponential backoff and jitter, at once after a service
restart (1012), when the server says after `try_again_later` (a web process with
more connects in hand than it admits gives each device its own turn), after the
longest backoff when the server closed it for sending
too many refused frames (4429: the refused readings were answered, so only good
ones are resent, but whatever made them bad may still be there), and never after
its token was refused or its meter disabled (4401, 4403: `run` raises
`Refused`). An `error` answers one refused reading, or several in its `errors`
list. `Outcomes` records what it was answered.

Given a list of URLs (the same service on several hosts), the device uses the first
until it fails and then fails over to the next, in turn: when a connection cannot be
opened, and when one is lost without the server closing it (the host went away, or
websockets' keepalive ping went unanswered: `ping_interval` and `ping_timeout` say how
soon that is noticed). A server that closes the connection itself (1012 and the rest)
is reconnected to at the same URL, where its siblings share the port.

The demo's simulator, the load generator and the integration tests use it.
No Django here (protocol.py has no project imports): it talks to the server
only as a device would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import urllib.parse
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from protocol import BUSY_RETRY_MS, CLOSE_FINAL, CLOSE_SERVICE_RESTART, CLOSE_TOO_MANY

logger = logging.getLogger(__name__)

MAX_BATCH = 1000  # readings a frame: the contract's limit
RESEND_AFTER = 10.0  # seconds without an answer before a reading is sent again


class Refused(Exception):
    """The server closed with 4401 or 4403: reconnecting cannot help until someone acts."""

    def __init__(self, code: int) -> None:
        super().__init__(f"refused by the server (close code {code})")
        self.code = code


def meters_url(base: str, token: str | None = None) -> str:
    """The device socket of the server at `base` (http, https, ws or wss). With `token`,
    the token goes in the query string, for devices that cannot set headers."""
    base = base.rstrip("/")
    for web, socket in (("https://", "wss://"), ("http://", "ws://")):
        if base.startswith(web):
            base = socket + base.removeprefix(web)
    url = f"{base}/ws/meters/"
    return f"{url}?{urllib.parse.urlencode({'token': token})}" if token is not None else url


def frame_message(readings: list[dict]) -> dict:
    """The protocol's frame for readings: a "reading" for one, a "batch" for several."""
    if len(readings) == 1:
        return {"type": "reading", **readings[0]}
    return {"type": "batch", "readings": readings}


@dataclass(frozen=True)
class Backoff:
    """Seconds to wait before reconnecting: `first` after a drop, times `factor` for each
    failed attempt since, at most `cap`; each spread by ±`jitter` so that a fleet dropped
    together does not come back together."""

    first: float = 1.0
    factor: float = 2.0
    cap: float = 15.0
    jitter: float = 0.25

    def delay(self, failures: int) -> float:
        """The wait after `failures` failed connection attempts in a row (0: after a drop)."""
        base = min(self.cap, self.first * self.factor ** min(failures, 64))
        return base * random.uniform(1 - self.jitter, 1 + self.jitter)

    def longest(self) -> float:
        """The wait at the cap, as after many failures."""
        return self.cap * random.uniform(1 - self.jitter, 1 + self.jitter)


@dataclass
class Outcomes:
    """What the server answered a device (or the devices sharing this record), and what
    the device did about it. Times are the event loop's clock, time.monotonic()."""

    keep_ids: bool = True  # False: counts only (sent, acked stay empty), for long runs
    sent: dict[str, float] = field(default_factory=dict)  # reading id -> first sent
    acked: dict[str, float] = field(default_factory=dict)  # reading id -> first acked
    acks: int = 0  # readings acked, as new or as duplicates
    duplicates: int = 0  # ids acks listed as duplicates (recorded before)
    errors: dict[str, dict] = field(default_factory=dict)  # reading id -> its id, code, detail
    frame_errors: list[dict] = field(default_factory=list)  # errors of whole frames (id null)
    busy: int = 0  # busy answers
    busy_readings: int = 0  # readings they named, each resent after retry_after_ms
    resent: int = 0  # readings resent after a silence or a reconnect
    late: int = 0  # answers for readings answered before
    reconnects: int = 0
    close_codes: list[int | None] = field(default_factory=list)  # the server's, each drop
    others: Counter[str] = field(default_factory=Counter)  # answers of other types
    last_answer: float = field(default_factory=time.monotonic)
    last_kind: str = ""

    def latencies(self) -> list[float]:
        """Seconds from each acked reading's first send to its ack."""
        sent = self.sent
        return [at - sent[rid] for rid, at in self.acked.items()]


@dataclass(eq=False)
class Frame:
    """The readings of one `send`: `answers` gets each one's answer ("ack", "duplicate"
    or an error code), and `done` resolves once every one has its answer."""

    remaining: set[str]
    done: asyncio.Future[None]
    answers: dict[str, str] = field(default_factory=dict)

    def answered(self, rid: str, answer: str) -> None:
        self.answers[rid] = answer
        self.remaining.discard(rid)
        if not self.remaining and not self.done.done():
            self.done.set_result(None)


@dataclass(slots=True)
class Waiting:
    """A reading sent and not answered yet."""

    item: dict  # id, ts and quantity or value: as it goes into a batch
    frame: Frame  # the send it belongs to
    last_sent: float | None = None  # None: not on the wire yet (sent while offline)
    busy: bool = False  # answered busy: a resend is scheduled


class Device:
    """One meter's connection, the readings it waits on, and their outcomes."""

    def __init__(
        self,
        url: str | Sequence[str] | None,
        token: str | None = None,
        *,
        name: str = "device",
        resend_after: float = RESEND_AFTER,
        backoff: Backoff | None = None,
        outcomes: Outcomes | None = None,
        max_batch: int = MAX_BATCH,
        on_open: Callable[[Device], None] | None = None,
        **options: Any,
    ) -> None:
        """`url`: the device socket (see meters_url), or several to fail over between.
        `token`, if given, goes in the Authorization header. `on_open` is called after each
        connection the device opens, once what waited has been resent. `options` go to
        websockets' connect (max_size, ping_interval, ...)."""
        self.urls = [url] if isinstance(url, str) else list(url or ())
        self.at = 0  # the index in urls of the one in use
        self.on_open = on_open
        self.name = name
        self.resend_after = resend_after
        self.backoff = backoff or Backoff()
        self.come_back_after: float | None = None  # seconds: the last try_again_later said
        self.outcomes = outcomes if outcomes is not None else Outcomes()
        self.max_batch = max_batch
        headers = {"Authorization": f"Bearer {token}"} if token is not None else None
        self.options: dict[str, Any] = {"additional_headers": headers, "open_timeout": 10}
        self.options.update(options)
        self.ws: ClientConnection | None = None
        self.waiting: dict[str, Waiting] = {}
        self._drained = asyncio.Event()
        self._drained.set()
        self._tasks: set[asyncio.Task] = set()

    @property
    def url(self) -> str | None:
        """The URL in use (None for a connection opened elsewhere)."""
        return self.urls[self.at] if self.urls else None

    def fail_over(self) -> None:
        """Use the next URL from now on (the first again after the last)."""
        if self.urls:
            self.at = (self.at + 1) % len(self.urls)

    @classmethod
    def over(cls, ws: ClientConnection, **kwargs: Any) -> Device:
        """A device on a connection opened elsewhere: it neither reconnects nor closes it."""
        device = cls(None, **kwargs)
        device.ws = ws
        return device

    async def connect(self) -> None:
        """Connect now rather than in `run`, which then serves this connection (close()
        closes it); raises if it cannot."""
        self.ws = await connect(self.url, **self.options)

    async def close(self) -> None:
        """Close the connection `connect` opened (one opened elsewhere stays open)."""
        if self.ws is not None and self.url is not None:
            await self.ws.close()

    # --- sending -------------------------------------------------------------------

    async def send(self, readings: Iterable[dict]) -> Frame:
        """Send readings (id, ts, quantity or value) in one frame: a "reading" for one, a
        batch for several. Each is kept, and resent, until the server answers it."""
        loop = asyncio.get_running_loop()
        frame = Frame(remaining=set(), done=loop.create_future())
        now = loop.time()
        kept = [self._keep(reading, frame, now) for reading in readings]
        if not frame.remaining:
            frame.done.set_result(None)
        await self._transmit(kept)
        return frame

    def _keep(self, reading: dict, frame: Frame, now: float) -> Waiting:
        """The reading as waiting for its answer; one already waiting stays in its first frame."""
        item = {k: v for k, v in reading.items() if k != "type"} if "type" in reading else reading
        rid = item["id"]
        waiting = self.waiting.get(rid)
        if waiting is not None:
            waiting.item = item
            return waiting
        waiting = self.waiting[rid] = Waiting(item, frame)
        frame.remaining.add(rid)
        self._drained.clear()
        if self.outcomes.keep_ids:
            self.outcomes.sent.setdefault(rid, now)
        return waiting

    async def _transmit(self, readings: list[Waiting]) -> None:
        """Put readings on the wire, `max_batch` a frame. Offline, they wait for the next
        connection; if this one drops meanwhile, the reader sees it and reconnects."""
        ws = self.ws
        if ws is None or not readings:
            return
        now = asyncio.get_running_loop().time()
        for waiting in readings:
            waiting.last_sent = now
        with contextlib.suppress(ConnectionClosed):
            for start in range(0, len(readings), self.max_batch):
                chunk = [waiting.item for waiting in readings[start : start + self.max_batch]]
                await ws.send(json.dumps(frame_message(chunk)))

    async def _resend(self, ids: Iterable[str], *, counted: bool) -> None:
        """Send waiting readings again (those answered meanwhile are skipped)."""
        again = [waiting for rid in ids if (waiting := self.waiting.get(rid)) is not None]
        if counted:
            self.outcomes.resent += sum(waiting.last_sent is not None for waiting in again)
        await self._transmit(again)

    async def _resend_unanswered(self) -> None:
        """Every so often, resend what has had no answer for `resend_after` seconds: the
        channel layer delivers at most once, so an answer can be lost."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, self.resend_after / 2))
            cutoff = loop.time() - self.resend_after
            stale = [
                rid
                for rid, waiting in self.waiting.items()
                if not waiting.busy and waiting.last_sent is not None and waiting.last_sent < cutoff
            ]
            if stale:
                logger.info("%s resends %d unanswered readings", self.name, len(stale))
                await self._resend(stale, counted=True)

    async def _retry(self, ids: list[str], delay: float) -> None:
        """Resend readings answered busy once the server's retry time has passed."""
        await asyncio.sleep(delay)
        for rid in ids:
            if (waiting := self.waiting.get(rid)) is not None:
                waiting.busy = False
        await self._resend(ids, counted=False)

    # --- answers -------------------------------------------------------------------

    def _answer(self, message: dict) -> None:
        """Settle what one server message answers."""
        kind = message.get("type")
        now = asyncio.get_running_loop().time()
        self.outcomes.last_answer, self.outcomes.last_kind = now, str(kind)
        if kind == "ack":
            for rid in message.get("ids", ()):
                self._settle(rid, "ack", now)
            for rid in message.get("duplicates", ()):
                self.outcomes.duplicates += 1
                self._settle(rid, "duplicate", now)
        elif kind == "busy":
            self._on_busy(message)
        elif kind == "error":
            self._on_error(message, now)
        elif kind == "try_again_later":
            self._on_try_again_later(message)
        else:
            self.outcomes.others[str(kind)] += 1

    def _on_try_again_later(self, message: dict) -> None:
        """Leave, and come back when the server said (_stay_connected waits for it)."""
        self.outcomes.others["try_again_later"] += 1
        self.come_back_after = int(message.get("retry_after_ms", 0)) / 1000
        if self.ws is not None:
            self._spawn(self.ws.close())

    def _settle(self, rid: str, answer: str, now: float) -> None:
        waiting = self.waiting.pop(rid, None)
        if waiting is None:
            self.outcomes.late += 1
            return
        if answer in ("ack", "duplicate"):
            self.outcomes.acks += 1
            if self.outcomes.keep_ids:
                self.outcomes.acked.setdefault(rid, now)
        waiting.frame.answered(rid, answer)
        if not self.waiting:
            self._drained.set()

    def _on_busy(self, message: dict) -> None:
        """Nothing of these readings was recorded: send them again after the retry time."""
        ids = []
        for rid in message.get("ids", ()):
            waiting = self.waiting.get(rid)
            if waiting is not None and not waiting.busy:
                waiting.busy = True
                ids.append(rid)
        self.outcomes.busy += 1
        self.outcomes.busy_readings += len(ids)
        if ids:
            delay = message.get("retry_after_ms", BUSY_RETRY_MS) / 1000
            self._spawn(self._retry(ids, delay))

    def _on_error(self, message: dict, now: float) -> None:
        """A refused reading is answered for good (resending will not help), and so is each
        of `errors` when a frame had several; a refused frame (id null) answers nothing."""
        errors = message.get("errors") or [message]
        logger.warning("%s: %d refused: %s", self.name, len(errors), errors[0])
        for error in errors:
            rid = error.get("id")
            if rid is None:
                self.outcomes.frame_errors.append(error)
                continue
            self.outcomes.errors[rid] = error
            self._settle(rid, str(error.get("code")), now)

    # --- connections ---------------------------------------------------------------

    async def run(
        self, feed: Awaitable[None] | None = None, *, drain_timeout: float | None = None
    ) -> None:
        """Stay connected while `feed` (say, a coroutine calling `send`) runs, then until every
        reading has its answer or `drain_timeout` seconds have passed; without a feed, until
        cancelled. Connections it opened are closed when it returns. Raises Refused after
        4401 or 4403, and ConnectionError when a connection opened elsewhere closes."""
        connection = asyncio.create_task(self._stay_connected())
        try:
            if feed is None:
                await connection
                return
            await self._beside(connection, feed)
            with contextlib.suppress(TimeoutError):
                drained = asyncio.wait_for(self._drained.wait(), drain_timeout)
                await self._beside(connection, drained)
        finally:
            tasks = [connection, *self._tasks]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    @staticmethod
    async def _beside(connection: asyncio.Task, work: Awaitable[None]) -> None:
        """Await `work` while the connection is served; should the connection's task end
        first (refused, or a connection opened elsewhere closed), raise why."""
        task = asyncio.ensure_future(work)
        try:
            await asyncio.wait({task, connection}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            task.cancel()  # nothing once it is done
        if task.done():
            task.result()
        else:
            connection.result()

    async def _stay_connected(self) -> None:
        """Serve a connection until cancelled, reconnecting as its close code asks."""
        failures = 0
        while True:
            opened, code = await self._session()
            if code in CLOSE_FINAL:
                logger.error("%s refused (close code %s): not reconnecting", self.name, code)
                raise Refused(code)
            if self.url is None:
                raise ConnectionError(f"{self.name}: the connection closed (close code {code})")
            self.outcomes.reconnects += 1
            failures = 0 if opened else failures + 1
            if code is None:  # not opened, or lost without a close frame: try elsewhere
                self.fail_over()
            if self.come_back_after is not None:  # the turn the server gave it
                come_back_after, self.come_back_after = self.come_back_after, None
                await asyncio.sleep(come_back_after)
            elif code == CLOSE_TOO_MANY:  # not at once: the server has had enough of this device
                await asyncio.sleep(self.backoff.longest())
            elif code != CLOSE_SERVICE_RESTART:
                await asyncio.sleep(self.backoff.delay(failures))

    async def _session(self) -> tuple[bool, int | None]:
        """Serve the open connection, or open one and resend what waits, until it closes.
        Returns whether there was a connection, and the server's close code."""
        ws, opened_here = self.ws, self.ws is None
        if ws is None:
            try:
                ws = self.ws = await connect(self.url, **self.options)
            except (OSError, InvalidHandshake, TimeoutError) as error:
                logger.warning("%s cannot connect: %s", self.name, error)
                return False, None
            logger.info("%s connected", self.name)
        try:
            if opened_here:
                await self._resend(list(self.waiting), counted=True)
                if self.on_open is not None:
                    self.on_open(self)
            code = await self._serve(ws)
        finally:
            if opened_here:
                self.ws = None
                await ws.close()
        self.ws = None
        return True, code

    async def _serve(self, ws: ClientConnection) -> int | None:
        """Read answers until the connection closes, resending meanwhile whatever goes
        unanswered for `resend_after` seconds. Returns the server's close code."""
        watchdog = asyncio.create_task(self._resend_unanswered())
        try:
            while True:
                self._answer(json.loads(await ws.recv()))
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd is not None else None
            self.outcomes.close_codes.append(code)
            logger.warning("%s disconnected (close code %s)", self.name, code)
            return code
        finally:
            watchdog.cancel()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
