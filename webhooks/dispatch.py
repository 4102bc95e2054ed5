"""The Celery worker's delivery threads: a slow endpoint holds up one thread, never the worker.

Celery runs Meterline's tasks one at a time (`--concurrency 1` in deploy/ and `make run`),
and one POST may take the whole 10 s timeout. So the tasks only decide what is to be
delivered (the fan-out, the endpoints with something due) and hand each endpoint to a
thread of this process (METERLINE_WEBHOOK_THREADS of them), which sends its deliveries
under the endpoint's lease (webhooks/delivery.py). An endpoint handed over again while
it is queued or running here runs once more afterwards, never twice at once; a run
whose queue is empty lingers a moment for the next kick, keeping its lease.

The process also sweeps on its own (`pump_start`, from the first task on), so that a long
task in Celery's one slot delays no delivery for longer than a sweep interval. Nothing
is lost with the process: whatever was not recorded as delivered is still pending in the
database, and a sweep hands it out again once its lease expires.
At a warm shutdown the attempts in flight finish and are recorded; nothing new starts.
"""

import logging
import os
import secrets
import socket
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from webhooks.delivery import endpoint_deliver
from webhooks.fanout import events_fan_out
from webhooks.models import WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)

# A run whose queue is empty keeps its endpoint this long for the next event (while
# threads are to spare), rather than give the lease back and take it again at once.
LINGER_SECONDS = 0.2

# Guards _kicked; notified when an endpoint is handed over again.
_lock = threading.Condition()
# Endpoints queued or running in this process -> handed over again meanwhile.
_kicked: dict[str, bool] = {}
_pool: ThreadPoolExecutor | None = None
_pump: threading.Thread | None = None
_owner = ""
_stop = threading.Event()


def deliveries_pump(*, sweep: bool) -> int:
    """Fan out committed events and start delivering them; the sweep also starts whatever
    is due (retries, deliveries left by a lost wake or a dead process). Returns how many
    endpoints it handed to the delivery threads."""
    endpoint_ids = events_fan_out()
    if sweep:
        endpoint_ids |= endpoints_due()
    endpoints_kick(sorted(endpoint_ids))
    return len(endpoint_ids)


def pump_start() -> None:
    """Start this process's own sweep (idempotent): every METERLINE_WEBHOOK_SWEEP_SECONDS,
    whatever Celery is busy with. Celery has one slot, and a long task there (closing
    many periods) would otherwise hold up the fan-outs and retries queued behind it."""
    global _pump
    with _lock:
        if _stop.is_set() or (_pump is not None and _pump.is_alive()):
            return
        _pump = threading.Thread(target=_pump_forever, name="webhook-pump", daemon=True)
        _pump.start()


def _pump_forever() -> None:
    while not _stop.wait(settings.METERLINE_WEBHOOK_SWEEP_SECONDS):
        try:
            close_old_connections()
            deliveries_pump(sweep=True)
        except Exception:  # the database may be restarting: next time
            logger.warning("webhook sweep failed", exc_info=True)
        finally:
            close_old_connections()


def endpoints_due() -> set[str]:
    """Active endpoints with a delivery due and no live lease (one index probe each, however
    long the queue behind a delivery that waits for its retry)."""
    now = timezone.now()
    due = WebhookDelivery.objects.filter(
        endpoint=OuterRef("pk"), status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now
    )
    unleased = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    endpoints = WebhookEndpoint.objects.filter(unleased, Exists(due), active=True)
    return set(endpoints.values_list("id", flat=True))


def endpoints_kick(endpoint_ids: Iterable[str]) -> None:
    """Have the delivery threads send what is due to each endpoint."""
    for endpoint_id in endpoint_ids:
        with _lock:
            if _stop.is_set():
                return
            if endpoint_id in _kicked:
                _kicked[endpoint_id] = True
                _lock.notify_all()
                continue
            _kicked[endpoint_id] = False
            pool = _threads()
        pool.submit(_run, endpoint_id)


def _threads() -> ThreadPoolExecutor:
    global _pool, _owner
    if _pool is None:
        _pool = ThreadPoolExecutor(settings.METERLINE_WEBHOOK_THREADS, "webhook-delivery")
        # The lease holder's name: this process (the random part tells a restart apart).
        _owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    return _pool


def _run(endpoint_id: str) -> None:
    def more() -> bool:
        with _lock:
            spare = len(_kicked) < settings.METERLINE_WEBHOOK_THREADS
            if spare and not _kicked.get(endpoint_id) and not _stop.is_set():
                _lock.wait(LINGER_SECONDS)
            kicked, _kicked[endpoint_id] = _kicked.get(endpoint_id, False), False
        return kicked

    while True:
        try:
            close_old_connections()
            endpoint_deliver(endpoint_id=endpoint_id, owner=_owner, stop=_stop, more=more)
        except Exception:  # the database may be restarting: the sweeper hands it out again
            logger.exception("webhook deliveries to endpoint %s stopped", endpoint_id)
        finally:
            close_old_connections()
        with _lock:
            if _kicked.get(endpoint_id) and not _stop.is_set():
                _kicked[endpoint_id] = False
                continue
            _kicked.pop(endpoint_id, None)
            return


def dispatch_stop(**kwargs: object) -> None:
    """Let the attempts in flight finish and be recorded, and start nothing more until
    they have (Celery's worker_shutdown and worker_process_shutdown signals)."""
    global _pool
    with _lock:
        _stop.set()
        _lock.notify_all()  # no run lingers
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)
    with _lock:
        _kicked.clear()
        _stop.clear()


def _after_fork_in_child() -> None:
    # A forked child has none of its parent's threads: it starts its own when needed.
    global _lock, _pool, _pump
    _lock = threading.Condition()
    _pool = _pump = None
    _kicked.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)
