"""Fan-out inside a web process: one channel-layer membership per group, however many of
the process's dashboards listen to it.

A group_send reaches every member channel: with 1,000 dashboards of one account in a
process, channels-redis reads the 1,000 member names on every send and writes a copy
listing all of them, the process hands it to 1,000 receive coroutines, and each
dashboard rejoins its two groups every few seconds (a restarted Redis shard forgets
groups). Here the process joins each group once, on a channel of its own for that
group, and puts what arrives into the inbox of each of its dashboards of the group
(an asyncio queue the consumer reads beside its socket), as the batcher hands the
workers' answers to device connections. What arrives for a group reaches each of its
dashboards in the order it arrived, each charge event encoded once for all of them.

The hub rejoins its groups every refresh, and then tells each dashboard of an account
its latest committed event number (one query for all of the process's accounts), to
catch up with what went missing. A dashboard that misses events reads them from the
event log (metering/event_log.py) through the hub, which makes one query of the many
dashboards that missed the same events at the same moment.
"""

import asyncio
import json
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import BaseChannelLayer

from metering.event_log import account_event_seqs, account_events_between
from project.metrics import LAYER_RECEIVE_ERRORS
from protocol import account_group

logger = logging.getLogger(__name__)

# Messages a dashboard may have waiting in its inbox; beyond, they are dropped for it
# (as a full channel drops them): a dropped event is a gap, caught up from the log.
INBOX_CAPACITY = 1000
# How long a catch-up read serves the dashboards that missed the same events.
CATCH_UP_REUSE_SECONDS = 1.0
STOP = {"type": "hub.stop"}  # sent to a group's channel after leaving the group

Inbox = asyncio.Queue


@dataclass(eq=False)
class _Group:
    name: str
    account_id: str | None  # an account's dashboards: told its event number each refresh
    members: set[Inbox] = field(default_factory=set)
    channel: str = ""
    listener: asyncio.Future | None = None
    joined: asyncio.Future = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass(eq=False)
class _CatchUp:
    after: int
    upto: int
    read: asyncio.Future  # the events after..upto, or None when the log lacks some


class DashboardHub:
    """One per web process (and channel layer): see the module docstring."""

    def __init__(self, layer: BaseChannelLayer, refresh_seconds: Callable[[], float]):
        self.layer = layer
        self.refresh_seconds = refresh_seconds  # read at each refresh (tests shorten it)
        self.groups: dict[str, _Group] = {}
        self.catch_ups: dict[str, _CatchUp] = {}
        self._tasks: set[asyncio.Future] = set()  # held, so the loop does not drop them
        self._refresher: asyncio.Task | None = None

    async def join(self, name: str, inbox: Inbox, *, account_id: str | None = None) -> None:
        """Listen to group `name` from now on; returns once the group's messages reach the
        inbox (the process joined the group in the layer). Raises if it could not."""
        group = self.groups.get(name)
        if group is not None:
            group.members.add(inbox)
            await asyncio.shield(group.joined)
            return
        group = self.groups[name] = _Group(name, account_id, {inbox})
        try:
            group.channel = await self.layer.new_channel()
            await self.layer.group_add(name, group.channel)
        except BaseException as error:
            if self.groups.get(name) is group:
                del self.groups[name]
            group.joined.set_exception(error)
            group.joined.exception()  # retrieved: the joiners waiting raise it
            raise
        group.listener = self._spawn(self._listen(group))
        group.joined.set_result(None)
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.ensure_future(self._refresh())
        if not group.members:  # every member left while it joined
            self._left(group)

    def leave(self, name: str, inbox: Inbox) -> None:
        """Stop listening; the process leaves the group with its last dashboard."""
        group = self.groups.get(name)
        if group is None or inbox not in group.members:
            return
        group.members.discard(inbox)
        if not group.members and group.joined.done():
            self._left(group)

    def _left(self, group: _Group) -> None:
        if self.groups.get(group.name) is group:
            del self.groups[group.name]
        self._spawn(self._discard(group))

    async def _discard(self, group: _Group) -> None:
        try:
            await self.layer.group_discard(group.name, group.channel)
            # After the last message of the group: its listener stops there, unlike a
            # cancelled receive, which can lose a message of another channel.
            await self.layer.send(group.channel, STOP)
        except Exception:
            logger.warning("could not leave group %s", group.name, exc_info=True)
            if group.listener is not None:  # rather than listen for ever
                group.listener.cancel()

    async def _listen(self, group: _Group) -> None:
        while True:
            try:
                message = await self.layer.receive(group.channel)
            except Exception:
                LAYER_RECEIVE_ERRORS.inc()
                logger.warning("receiving group %s failed; retrying", group.name, exc_info=True)
                await asyncio.sleep(0.5)
                continue
            kind = message.get("type")
            if kind == STOP["type"]:
                return
            if kind == "dashboard.batch":  # several accounts' events (billing/events.py)
                self._batch_deliver(message["accounts"])
                continue
            if kind == "dashboard.events":
                message = encoded(message)
            self._deliver(group, message)

    def _batch_deliver(self, accounts: dict[str, list]) -> None:
        """Each account's events to its dashboards here, whichever channel they came on."""
        for account_id, events in accounts.items():
            group = self.groups.get(account_group(account_id))
            if group is not None and group.account_id == account_id:
                self._deliver(group, encoded({"type": "dashboard.events", "events": events}))

    def _deliver(self, group: _Group, message: dict[str, Any]) -> None:
        for inbox in list(group.members):
            try:
                inbox.put_nowait(message)
            except asyncio.QueueFull:
                logger.warning(
                    "a dashboard of %s is %d messages behind", group.name, INBOX_CAPACITY
                )

    async def _refresh(self) -> None:
        """Rejoin every group, and tell each account's dashboards its latest event number."""
        while self.groups:
            await asyncio.sleep(self.refresh_seconds())
            groups = list(self.groups.values())
            for group in groups:
                try:
                    await self.layer.group_add(group.name, group.channel)
                except Exception:
                    logger.warning("could not rejoin group %s", group.name, exc_info=True)
            accounts = {group.account_id for group in groups if group.account_id}
            if not accounts:
                continue
            try:
                seqs = await database_sync_to_async(account_event_seqs)(account_ids=accounts)
            except Exception:
                logger.warning("could not read the accounts' event numbers", exc_info=True)
                continue
            for group in groups:
                if group.account_id in seqs:
                    refresh = {"type": "dashboard.refresh", "committed": seqs[group.account_id]}
                    self._deliver(group, refresh)

    async def events_between(
        self, *, account_id: str, after: int, upto: int
    ) -> list[tuple[int, str]] | None:
        """The account's events numbered after `after` up to `upto` from the event log, as
        (seq, text), or None when it lacks some: read and encoded once for the dashboards
        missing the same ones at the same moment."""
        catch_up = self.catch_ups.get(account_id)
        if catch_up is None or not (catch_up.after <= after and upto <= catch_up.upto):
            read = asyncio.ensure_future(self._read(account_id, after, upto))
            catch_up = self.catch_ups[account_id] = _CatchUp(after, upto, read)
            loop = asyncio.get_running_loop()
            forget = partial(self._forget, account_id, catch_up)
            read.add_done_callback(lambda _: loop.call_later(CATCH_UP_REUSE_SECONDS, forget))
        events = await asyncio.shield(catch_up.read)
        if events is None:
            return None
        return [(seq, text) for seq, text in events if after < seq <= upto]

    @staticmethod
    async def _read(account_id: str, after: int, upto: int) -> list[tuple[int, str]] | None:
        events = await database_sync_to_async(account_events_between)(
            account_id=account_id, after=after, upto=upto
        )
        return None if events is None else [(e["seq"], json.dumps(e)) for e in events]

    def _forget(self, account_id: str, catch_up: _CatchUp) -> None:
        if self.catch_ups.get(account_id) is catch_up:
            del self.catch_ups[account_id]

    def _spawn(self, coroutine) -> asyncio.Future:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def close(self) -> None:
        """Stop listening to every group (tests that flush the layer under the hub)."""
        for task in [*self._tasks, self._refresher]:
            if task is not None:
                task.cancel()
        self.groups.clear()


def encoded(message: dict[str, Any]) -> dict[str, Any]:
    """A dashboard.events message with each event's text, encoded once for every dashboard."""
    return message | {"texts": [json.dumps(event) for event in message["events"]]}


# Per event loop, per layer: a test may run several of each.
_hubs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def dashboard_hub(layer: BaseChannelLayer, refresh_seconds: Callable[[], float]) -> DashboardHub:
    """This event loop's hub for the layer."""
    loop = asyncio.get_running_loop()
    per_layer = _hubs.get(loop)
    if per_layer is None:  # not setdefault: it would make a dictionary on every call
        per_layer = _hubs[loop] = weakref.WeakKeyDictionary()
    if layer not in per_layer:
        per_layer[layer] = DashboardHub(layer, refresh_seconds)
    return per_layer[layer]


def dashboard_hubs_forget() -> None:
    """Stop and drop this event loop's hubs: for tests that flush the layer under them."""
    for hub in _hubs.pop(asyncio.get_running_loop(), {}).values():
        hub.close()
