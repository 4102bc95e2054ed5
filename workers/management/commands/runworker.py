"""manage.py runworker CHANNEL...: serve named channels, one message in hand, stop gracefully.

Channels' own runworker pulls messages off Redis into an unbounded in-memory
queue, and a crash or SIGTERM loses the queue. This one asks the channel layer
for the next message only when the consumer has finished the last one, so a
worker never holds more than one message per channel; it rides out a Redis
outage by retrying; and on SIGTERM or SIGINT it finishes the message in hand,
takes no other, and exits 0. The consumers are the same ASGI applications
(the "channel" route of project.asgi), so nothing else changes.

A message lost anyway (the process is killed, or stopped while Redis was
handing it over) was never acknowledged to its device, which resends it.
"""

import asyncio
import contextlib
import itertools
import logging
import signal
import threading

import redis
from channels.layers import get_channel_layer
from channels.routing import get_default_application
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from workers.heartbeat import heartbeat_start

logger = logging.getLogger("meterline.worker")

RETRY_SECONDS = (0.1, 0.5, 1, 2, 5)


class Command(BaseCommand):
    help = "Run the consumers of named channels (e.g. rating), one message at a time."

    def add_arguments(self, parser):
        parser.add_argument("channels", nargs="+", help="channels to serve, e.g. rating")
        parser.add_argument(
            "--grace",
            type=float,
            default=settings.METERLINE_WORKER_GRACE_SECONDS,
            help="seconds to finish the message in hand after SIGTERM",
        )

    def execute(self, *args, **options):
        try:
            return super().execute(*args, **options)
        except CommandError as error:
            if getattr(settings, "LOG_FORMAT", "text") != "json":
                raise
            # Django would print "CommandError: ..." as text on stderr.
            logger.error("%s", error)
            raise SystemExit(error.returncode) from None

    def handle(self, *args, channels, grace, **options):
        if get_channel_layer() is None:
            raise CommandError("no channel layer is configured (CHANNEL_LAYERS)")
        stop_heartbeat = threading.Event()
        heartbeat = heartbeat_start(stop=stop_heartbeat)
        try:
            clean = asyncio.run(serve(channels, grace=grace))
        finally:
            stop_heartbeat.set()
            heartbeat.join(timeout=3)
        if not clean:
            raise CommandError("stopped before the message in hand was finished")


class Feed:
    """A consumer's receive(): one message from the layer each time the consumer asks.

    `idle` is set while the consumer waits for its next message, that is, while
    it holds none; asking again once stopping parks it for good.
    """

    def __init__(self, channel: str, stopping: asyncio.Event):
        self.channel = channel
        self.stopping = stopping
        self.idle = asyncio.Event()

    async def __call__(self) -> dict:
        self.idle.set()
        if self.stopping.is_set():
            await asyncio.Event().wait()  # never returns: serve() cancels us
        message = await self._next()
        self.idle.clear()
        return message

    async def _next(self) -> dict:
        for failures in itertools.count():
            try:
                return await get_channel_layer().receive(self.channel)
            except (redis.RedisError, OSError) as exc:
                wait = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                logger.warning(
                    "receiving on %s failed (%s); retrying in %ss", self.channel, exc, wait
                )
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")


async def serve(channels: list[str], *, grace: float) -> bool:
    """Run one consumer per channel until SIGTERM/SIGINT; True if everything in hand finished."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    application = get_default_application()
    feeds = [Feed(channel, stopping) for channel in channels]
    consumers = [
        asyncio.create_task(
            application({"type": "channel", "channel": feed.channel}, feed, _no_send)
        )
        for feed in feeds
    ]
    logger.info("worker serving %s", ", ".join(channels))
    stop_wait = asyncio.create_task(stopping.wait())
    done, _ = await asyncio.wait([*consumers, stop_wait], return_when=asyncio.FIRST_COMPLETED)
    crashed = [task for task in consumers if task in done]
    if crashed:
        stop_wait.cancel()
        crashed[0].result()  # re-raise: a consumer must never end on its own
        raise CommandError("a consumer ended on its own")
    logger.info("stopping: finishing the message in hand (at most %ss)", grace)
    try:
        await asyncio.wait_for(asyncio.gather(*(feed.idle.wait() for feed in feeds)), grace)
        clean = True
    except TimeoutError:
        logger.error("a message was still being handled after %ss; abandoning it", grace)
        clean = False
    for task in consumers:
        task.cancel()
    for task in consumers:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    logger.info("worker stopped")
    return clean


async def _no_send(message: dict) -> None:
    raise RuntimeError(f"a channel consumer has no client to send to: {message.get('type')}")
