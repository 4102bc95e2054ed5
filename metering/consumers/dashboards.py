"""The dashboard WebSocket (CONTRACT.md section 4): authorise, send a snapshot, then the
account's events in commit order, with a fresh snapshot whenever one went missing.

Each dashboard also joins the channel-layer group of the credential it came with (its
dashboard key, operator key or signed-in user: metering/selectors.py `Grant`), so that a
revocation reaches it whichever web process holds it (billing/account_services.py).
"""

import asyncio
import json
from collections import Counter

from channels.auth import get_user
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth.models import AnonymousUser

from billing.keys import secret_hash
from metering.consumers.common import ConnectionGauge, HotPathDispatch, bearer_token, origin_allowed
from metering.dashboard import account_snapshot
from metering.ordering import EventOrder
from metering.selectors import (
    Access,
    Grant,
    account_event_seq,
    dashboard_access,
    dashboard_session_access,
)
from project.metrics import DASHBOARD_CONNECTIONS
from protocol import CLOSE_TOO_MANY, CLOSE_UNAUTHENTICATED, account_group

# How long a dashboard holds events back waiting for a missing earlier one,
# before it sends a fresh snapshot instead.
GAP_PATIENCE_SECONDS = 0.5
# How often a dashboard rejoins its account's group and checks it missed nothing.
GROUP_REFRESH_SECONDS = 5.0


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


class DashboardConsumer(ConnectionGauge, HotPathDispatch, AsyncWebsocketConsumer):
    gauge = DASHBOARD_CONNECTIONS
    no_database = frozenset({"websocket.receive", "dashboard.events", "dashboard.revoked"})
    group = None
    credential = None  # the group of the credential this dashboard came with
    session_hash = None  # signed in: the hash of its session's key, to hear its sign-out
    seated = False  # holds one of its credential's places in `seats`
    order: EventOrder | None = None
    # The account's event number a refresh ago: what should have arrived by now.
    committed_before = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.timers: dict[str, asyncio.TimerHandle] = {}  # message type -> pending wake-up

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Whichever way the consumer ends (a handler that raises never reaches
            # `disconnect`), its place is given back.
            if self.seated:
                self.seated = False
                seats[self.credential] -= 1
                if seats[self.credential] <= 0:
                    del seats[self.credential]

    async def connect(self):
        self.account_id = self.scope["url_route"]["kwargs"]["account_id"]
        grant = await self._grant()
        await self.accept()
        if grant.access is Access.ALLOWED:
            # Join the credential's group, then look again: a revocation told between the
            # first look and the join was told before this connection could hear it.
            self.credential = grant.credential
            await self.channel_layer.group_add(self.credential, self.channel_name)
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
        await self.channel_layer.group_add(self.group, self.channel_name)
        snapshot = await self._send_snapshot()
        self.order = EventOrder(after=snapshot["seq"])
        self._wake_later("dashboard.refresh", GROUP_REFRESH_SECONDS)

    async def disconnect(self, code):
        for timer in self.timers.values():
            timer.cancel()
        for group in (self.group, self.credential):
            if group:
                await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        """Dashboards only listen."""

    async def dashboard_events(self, message):
        for event in message["events"]:
            if "seq" not in event or self.order is None:  # meter status: not numbered
                await self._send(event)
                continue
            for ready in self.order.accept(event["seq"], event):
                await self._send(ready)
        self._wait_out_gap()

    async def dashboard_gap(self, message):
        """The patience for a missing event ran out: a fresh snapshot counts it."""
        self.timers.pop("dashboard.gap", None)
        if self.order.next == message["next"]:
            await self._resync()
        self._wait_out_gap()

    async def dashboard_refresh(self, message):
        """Stay in the account's and the credential's groups (a restarted Redis shard forgets
        its groups), and catch up if events committed a refresh ago have still not arrived."""
        self.timers.pop("dashboard.refresh", None)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.channel_layer.group_add(self.credential, self.channel_name)
        committed = await database_sync_to_async(account_event_seq)(account_id=self.account_id)
        if self.committed_before >= self.order.next and not self.order.waiting:
            await self._resync()
        self.committed_before = committed
        self._wake_later("dashboard.refresh", GROUP_REFRESH_SECONDS)

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

    async def _resync(self) -> None:
        snapshot = await self._send_snapshot()
        for ready in self.order.rebase(after=snapshot["seq"]):
            await self._send(ready)

    async def _send_snapshot(self) -> dict:
        snapshot = await database_sync_to_async(account_snapshot)(account_id=self.account_id)
        await self._send(snapshot)
        return snapshot

    def _wait_out_gap(self) -> None:
        if self.order.waiting:
            self._wake_later("dashboard.gap", GAP_PATIENCE_SECONDS, next=self.order.next)

    def _wake_later(self, kind: str, delay: float, **fields) -> None:
        """Send ourselves `kind` after `delay` (unless one is pending), through our own
        channel, so that it is handled in turn with the events."""
        if kind in self.timers:
            return
        wake = {"type": kind, **fields}
        self.timers[kind] = asyncio.get_running_loop().call_later(
            delay, lambda: asyncio.ensure_future(self.channel_layer.send(self.channel_name, wake))
        )

    async def _send(self, message: dict) -> None:
        await self.send(text_data=json.dumps(message))
