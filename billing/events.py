"""Events pushed to dashboards over the channel layer, after the data they describe commits.

Dashboard delivery is at most once (a dashboard's snapshot on reconnect
repairs a gap), so a failed publish is logged, never raised into a caller
whose transaction has already committed.
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
    """Send each account's events to its dashboards (a rated batch's, once committed)."""
    for account_id, account_events in events.items():
        dashboard_publish(account_id=account_id, events=account_events)
