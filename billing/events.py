"""Events pushed to dashboards over the channel layer, after the data they describe commits.

Dashboard delivery is at most once (a dashboard's snapshot on reconnect
repairs a gap), so a failed publish is logged, never raised into a caller
whose transaction has already committed.
"""

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)


def account_group(account_id: str) -> str:
    return f"account-{account_id}"


def meter_group(meter_id: str) -> str:
    return f"meter-{meter_id}"


def dashboard_publish(*, account_id: str, events: list[dict[str, Any]]) -> None:
    """Send each event to the account's dashboards (sync callers: workers, views)."""
    layer = get_channel_layer()
    for event in events:
        try:
            async_to_sync(layer.group_send)(
                account_group(account_id), {"type": "dashboard.event", "event": event}
            )
        except Exception:
            logger.exception("dashboard event for account %s was not published", account_id)
