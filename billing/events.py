"""Events pushed to dashboards over the channel layer, after the data they describe commits.

Dashboard delivery is at most once (a numbered charge event that goes missing is read
back from the event log, metering/event_log.py), so a failed publish is logged, never
raised into a caller whose transaction has already committed.

A rating batch holds the events of many accounts. Sent with a group_send each, a batch
of 300 accounts costs the worker 300 sends in a row, and each web process watching them
300 messages to receive, which at a few batches a second is more than a web process
receives (its channel fills, and the workers' answers wait behind the events). So the
batch's events go in one message per web process (`dashboard.batch`), to one of its
channels in the accounts' groups; the process's dashboard hub (metering/fanout.py)
hands each account's events to that account's dashboards.
"""

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from project.metrics import LAYER_GROUP_SEND_ERRORS
from protocol import account_group

logger = logging.getLogger(__name__)


def dashboard_publish(*, account_id: str, events: list[dict[str, Any]]) -> None:
    """Send the events to the account's dashboards in one message (sync callers: workers, views)."""
    try:
        async_to_sync(get_channel_layer().group_send)(
            account_group(account_id), {"type": "dashboard.events", "events": events}
        )
    except Exception:
        LAYER_GROUP_SEND_ERRORS.inc()
        logger.exception(
            "dashboard events for account %s were not published",
            account_id,
            extra={"account": account_id},
        )


def events_publish(events: dict[str, list[dict[str, Any]]]) -> None:
    """Send each account's events to its dashboards (a rated batch's, once committed): one
    message per web process watching any of them, where the layer can say who watches."""
    if not events:
        return
    layer = get_channel_layer()
    if not hasattr(layer, "group_members"):
        for account_id, account_events in events.items():
            dashboard_publish(account_id=account_id, events=account_events)
        return
    try:
        async_to_sync(_per_process)(layer, events)
    except Exception:
        LAYER_GROUP_SEND_ERRORS.inc()
        logger.exception("the dashboard events of %d accounts were not published", len(events))


async def _per_process(layer, events: dict[str, list[dict[str, Any]]]) -> None:
    groups = {account_group(account_id): account_id for account_id in events}
    members = await layer.group_members(list(groups))
    # Process channel prefix ("specific.<process>!") -> a channel of it, its accounts' events.
    messages: dict[str, tuple[str, dict[str, list]]] = {}
    for group, channels in members.items():
        for channel in channels:
            process = channel.partition("!")[0]
            _, accounts = messages.setdefault(process, (channel, {}))
            accounts[groups[group]] = events[groups[group]]
    for channel, accounts in messages.values():
        try:
            await layer.send(channel, {"type": "dashboard.batch", "accounts": accounts})
        except Exception:  # the other processes still get theirs
            LAYER_GROUP_SEND_ERRORS.inc()
            logger.warning("dashboard events for %s were not published", channel, exc_info=True)
