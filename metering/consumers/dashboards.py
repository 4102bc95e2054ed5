"""The dashboard WebSocket (CONTRACT.md section 4): authorise, send a snapshot, then the
account's events in commit order; an event that went missing is read from the event log
(metering/event_log.py), or, when the log no longer has it, a fresh snapshot counts it.

A dashboard listens to its account's group and to the group of the credential it came
with (its dashboard key, operator key or signed-in user: metering/selectors.py `Grant`),
so that a revocation reaches it whichever web process holds it
(billing/account_services.py). It does so through its process's hub (metering/fanout.py),
which joins each group once for all of the process's dashboards and puts what arrives
into each one's inbox: a dashboard has no channel-layer channel of its own.
"""

import asyncio
import contextlib
import json
from collections import Counter

from channels.auth import get_user
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from channels.utils import await_many_dispatch
from django.conf import settings
from django.contrib.auth.models import AnonymousUser

from billing.keys import secret_hash
from metering.consumers.common import ConnectionGauge, HotPathDispatch, bearer_token, origin_allowed
from metering.dashboard import account_snapshot
from metering.fanout import INBOX_CAPACITY, dashboard_hub
from metering.ordering import EventOrder
from metering.selectors import Access, Grant, dashboard_access, dashboard_session_access
from project.metrics import DASHBOARD_CONNECTIONS
from protocol import CLOSE_TOO_MANY, CLOSE_UNAUTHENTICATED, account_group

# How long a dashboard holds events back waiting for a missing earlier one, before it
# reads it from the event log instead.
GAP_PATIENCE_SECONDS = 0.5
# How often the hub rejoins its groups, and each dashboard checks it missed nothing.
GROUP_REFRESH_SECONDS = 5.0


def refresh_seconds() -> float:
    """GROUP_REFRESH_SECONDS as it is now (tests shorten it)."""
    return GROUP_REFRESH_SECONDS


# Open dashboards of this web process by credential (the credential's group name), against
# METERLINE_MAX_DASHBOARDS_PER_CREDENTIAL: one leaked key cannot hold a process's sockets.
seats: Counter[str] = Counter()


def credentials(scope) -> tuple[str | None, bool]:
    """The token the dashboard came with, and whether it came in the URL (`?token=`)
    rather than in the Authorization header."""
    header = bearer_token({"headers": scope.get("headers", [])})
    if header:
        return header, False
    return bearer_token(scope), True


class Inboxed:
    """A consumer that reads its socket and an in-memory inbox, in turn, in place of
    AsyncConsumer.__call__, which would also open a channel-layer receive of its own."""

    async def __call__(self, scope, receive, send):
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.channel_name = None  # nothing reaches it but through its inbox
        self.base_send = send
        with contextlib.suppress(StopConsumer):  # the consumer's way of ending
            await await_many_dispatch([receive, self.inbox.get], self.dispatch)


class DashboardConsumer(ConnectionGauge, HotPathDispatch, Inboxed, AsyncWebsocketConsumer):
    gauge = DASHBOARD_CONNECTIONS
    # The handlers that reach the database do it through database_sync_to_async.
    no_database = frozenset(
        {
            "websocket.receive",
            "dashboard.events",
            "dashboard.revoked",
            "dashboard.gap",
            "dashboard.refresh",
        }
    )
    hub = None
    group = None
    credential = None  # the group of the credential this dashboard came with
    session_hash = None  # signed in: the hash of its session's key, to hear its sign-out
    seated = False  # holds one of its credential's places in `seats`
    order: EventOrder | None = None
    # The account's event number a refresh ago: what should have arrived by now.
    committed_before = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.inbox: asyncio.Queue = asyncio.Queue(maxsize=INBOX_CAPACITY)
        self.joined: list[str] = []  # the groups it listens to through the hub
        self.gap_timer: asyncio.TimerHandle | None = None

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Whichever way the consumer ends (a handler that raises never reaches
            # `disconnect`), its groups and its place are given back.
            self._leave()
            if self.seated:
                self.seated = False
                seats[self.credential] -= 1
                if seats[self.credential] <= 0:
                    del seats[self.credential]

    async def connect(self):
        self.account_id = self.scope["url_route"]["kwargs"]["account_id"]
        self.hub = dashboard_hub(self.channel_layer, refresh_seconds)
        grant = await self._grant()
        await self.accept()
        if grant.access is Access.ALLOWED:
            # Join the credential's group, then look again: a revocation told between the
            # first look and the join was told before this connection could hear it.
            self.credential = grant.credential
            await self._join(self.credential)
            grant = await self._grant(fresh=True)
        if grant.access is not Access.ALLOWED:
            await self.close(code=grant.access.value)
            return
        if seats[self.credential] >= settings.METERLINE_MAX_DASHBOARDS_PER_CREDENTIAL:
            await self.close(code=CLOSE_TOO_MANY)
            return
        seats[self.credential] += 1
        self.seated = True
        session = self.scope.get("session")
        if session is not None and session.session_key:
            self.session_hash = secret_hash(session.session_key)
        # Join before taking the snapshot, so no charge falls between the two;
        # the events the snapshot already counts are dropped by their number.
        self.group = account_group(self.account_id)
        self._connection_counted()
        await self._join(self.group, account_id=self.account_id)
        snapshot = await self._send_snapshot()
        self.order = EventOrder(after=snapshot["seq"])

    async def disconnect(self, code):
        self._leave()

    async def receive(self, text_data=None, bytes_data=None):
        """Dashboards only listen."""

    async def dashboard_events(self, message):
        events = message["events"]
        # The hub encodes each event once for all of its dashboards.
        texts = message.get("texts") or [json.dumps(event) for event in events]
        for event, text in zip(events, texts, strict=True):
            if "seq" not in event or self.order is None:  # meter status: not numbered
                await self.send(text_data=text)
                continue
            for ready in self.order.accept(event["seq"], text):
                await self.send(text_data=ready)
        self._wait_out_gap()

    async def dashboard_gap(self, message):
        """The patience for a missing event ran out: it comes from the event log."""
        self.gap_timer = None
        missing = self.order.missing
        if missing is not None and missing[0] == message["next"]:
            await self._catch_up(upto=missing[1])
        self._wait_out_gap()

    async def dashboard_refresh(self, message):
        """The hub rejoined its groups (a restarted Redis shard forgets them) and tells the
        account's latest event number: catch up if events committed a refresh ago have
        still not arrived (the last ones lost: no later event shows the gap)."""
        if self.order is None:
            return
        if self.committed_before >= self.order.next and not self.order.waiting:
            await self._catch_up(upto=self.committed_before)
        self.committed_before = message["committed"]

    async def dashboard_revoked(self, message):
        """The key this dashboard came with was revoked."""
        await self.close(code=message["code"])

    async def dashboard_recheck(self, message):
        """Something changed for the signed-in user: a session signed out (this one's, or
        another's: `ended_session`), a membership went, the user was changed."""
        ended = message.get("ended_session")
        if ended is not None:
            if ended == self.session_hash:
                await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        grant = await self._grant(fresh=True)
        if grant.access is not Access.ALLOWED:
            await self.close(code=grant.access.value)

    async def _grant(self, *, fresh: bool = False) -> Grant:
        """What this connection's credentials come to now. `fresh`: read the signed-in
        user and their session again, rather than trust what the scope was given."""
        token, in_url = credentials(self.scope)
        user = self.scope.get("user")
        if token or user is None or not user.is_authenticated:
            return await database_sync_to_async(dashboard_access)(
                account_id=self.account_id, token=token, in_url=in_url
            )
        if not origin_allowed(self.scope):
            # The browser sends the session cookie whatever page opened the
            # socket: only our own pages may use it (cross-site WebSocket hijacking).
            return Grant(Access.NOT_ALLOWED)
        if fresh and "session" in self.scope:
            user = await self._user_again()
        return await database_sync_to_async(dashboard_session_access)(
            account_id=self.account_id, user=user
        )

    async def _user_again(self):
        """The session's user as the database has it now: anonymous once the session is
        gone (signed out), the user deactivated or their password changed."""
        session = self.scope["session"]
        if not await database_sync_to_async(session.exists)(session.session_key):
            return AnonymousUser()
        return await get_user(self.scope)

    async def _catch_up(self, *, upto: int) -> None:
        """Send the events after the last one sent up to `upto`, from the event log (read
        once by the hub for every dashboard missing them); a fresh snapshot when the log
        no longer has them all."""
        after = self.order.next - 1
        events = await self.hub.events_between(account_id=self.account_id, after=after, upto=upto)
        if events is None:
            await self._resync()
            return
        for seq, text in events:
            for ready in self.order.accept(seq, text):
                await self.send(text_data=ready)

    async def _resync(self) -> None:
        snapshot = await self._send_snapshot()
        for ready in self.order.rebase(after=snapshot["seq"]):
            await self.send(text_data=ready)

    async def _send_snapshot(self) -> dict:
        snapshot = await database_sync_to_async(account_snapshot)(account_id=self.account_id)
        await self.send(text_data=json.dumps(snapshot))
        return snapshot

    async def _join(self, group: str, *, account_id: str | None = None) -> None:
        self.joined.append(group)
        await self.hub.join(group, self.inbox, account_id=account_id)

    def _leave(self) -> None:
        if self.gap_timer is not None:
            self.gap_timer.cancel()
            self.gap_timer = None
        for group in self.joined:
            self.hub.leave(group, self.inbox)
        self.joined = []

    def _wait_out_gap(self) -> None:
        """Wake up after the patience (unless a wake-up is pending), in turn with the
        events: through the inbox."""
        if self.order.waiting and self.gap_timer is None:
            wake = {"type": "dashboard.gap", "next": self.order.next}
            self.gap_timer = asyncio.get_running_loop().call_later(
                GAP_PATIENCE_SECONDS, self._wake, wake
            )

    def _wake(self, message: dict) -> None:
        try:
            self.inbox.put_nowait(message)
        except asyncio.QueueFull:  # far behind: the next events arm another wake-up
            self.gap_timer = None
