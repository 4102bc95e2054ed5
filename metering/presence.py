"""Which web processes are alive, so that the meters of one that died show offline.

A daphne process that is killed never runs its consumers' `disconnect`, so
the meters whose connections it held would stay "online" for good. Each web
process holding device connections therefore stamps its row in `WebProcess`
every `METERLINE_WEB_HEARTBEAT_SECONDS`, and sweeps: a meter held by a
process not seen for `METERLINE_WEB_TTL_SECONDS` is marked offline (with its
`meter.offline` event, metering/offline.py) and its dashboards are told.
Presence expires on its own; nobody has to say goodbye. Any live web process
sweeps for all, so a meter goes offline within TTL + one heartbeat (20 s by
default) of its process dying.
"""

import logging
import os
import secrets
import socket
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from billing.events import dashboard_publish
from metering.dashboard import meter_status_event
from metering.models import Meter, WebProcess
from metering.offline import PROCESS_LOST, meter_offline_mark

logger = logging.getLogger(__name__)

# This process, as its device connections record it. The random part tells
# a restarted process from its predecessor with the same pid.
PROCESS_ID = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

_started = threading.Lock()
_thread: threading.Thread | None = None


def web_presence_start() -> None:
    """Stamp this process alive now, and keep it so from a thread (idempotent)."""
    global _thread
    with _started:
        if _thread is not None:
            return
        web_process_beat(process_id=PROCESS_ID)
        if not settings.METERLINE_WEB_HEARTBEAT_SECONDS:  # off: the unit tests beat by hand
            return
        _thread = threading.Thread(target=_beat_forever, name="web-presence", daemon=True)
        _thread.start()


def _beat_forever() -> None:
    while True:
        time.sleep(settings.METERLINE_WEB_HEARTBEAT_SECONDS)
        try:
            close_old_connections()
            web_process_beat(process_id=PROCESS_ID)
            connections_of_dead_processes_close()
        except Exception:  # the database may be restarting: try again next beat
            logger.warning("web presence heartbeat failed", exc_info=True)


def web_process_beat(*, process_id: str) -> None:
    WebProcess.objects.update_or_create(id=process_id, defaults={"seen_at": timezone.now()})


def connections_of_dead_processes_close() -> list[str]:
    """Mark offline every meter held by a web process not seen within the TTL; tell
    its dashboards. Returns the meters marked offline."""
    cutoff = timezone.now() - timedelta(seconds=settings.METERLINE_WEB_TTL_SECONDS)
    live = WebProcess.objects.filter(seen_at__gte=cutoff).values("id")
    stale = list(
        Meter.objects.exclude(connection="")
        .exclude(connection_process__in=live)
        .values_list("id", "account_id", "connection")
    )
    offline = []
    for meter_id, account_id, channel in stale:
        # Only if still that connection: the device may have reconnected meanwhile.
        if meter_offline_mark(meter_id=meter_id, channel_name=channel, reason=PROCESS_LOST):
            offline.append((meter_id, account_id))
    for meter_id, account_id in offline:
        logger.info(
            "meter %s offline: its web process stopped answering",
            meter_id,
            extra={"meter": meter_id, "account": account_id},
        )
        dashboard_publish(
            account_id=account_id,
            events=[meter_status_event(meter_id=meter_id, online=False)],
        )
    WebProcess.objects.filter(seen_at__lt=cutoff - timedelta(hours=1)).delete()
    return [meter_id for meter_id, _ in offline]
