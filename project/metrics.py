"""Every Prometheus metric of Meterline, defined once; `GET /metrics` (project/metrics_view.py)
shows them.

With `PROMETHEUS_MULTIPROC_DIR` set (the process supervisor sets it, and
empties the directory, before any process starts) prometheus-client runs in
its multiprocess mode: each process writes its values to mmap files there
and a scrape of any web process adds up every process of the host (daphne,
rating workers, Celery). The variable must be in the environment before
prometheus_client is first imported, which is why it is read from the
environment and never from Django settings. Unset (`make run`, unit tests),
the default registry is used and /metrics shows only the process it asks
(plus prometheus-client's own process_* and python_* metrics, which the
multiprocess mode cannot add up and leaves out).

Gauges of live processes (connections) lose their files when their process
ends: an atexit hook here for processes that exit, and a sweep at each
scrape for the ones killed (prometheus-client's mark_process_dead).

The hot path pays one `inc(n)` per batch or frame and outcome, never one per
reading, on labelled children looked up here once, at import.
"""

import atexit
import contextlib
import glob
import os

import prometheus_client
from django.core.exceptions import ImproperlyConfigured
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from project.env import env_str

MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR", "")
# Set at all, even empty, prometheus-client is in multiprocess mode: it must name a directory.
if "PROMETHEUS_MULTIPROC_DIR" in os.environ and not os.path.isdir(MULTIPROC_DIR):
    raise ImproperlyConfigured(
        f"PROMETHEUS_MULTIPROC_DIR must name an existing directory, got {MULTIPROC_DIR!r}."
    )

# Multiprocess mode cannot export `_created` samples; leave them out everywhere
# so that the page reads the same in both modes.
prometheus_client.disable_created_metrics()

# --- readings -----------------------------------------------------------------

READINGS = Counter(
    "meterline_readings",
    "Readings answered, once per reading per answer: charged or duplicate when their "
    "rating transaction commits, refused by the parser or by rating, busy when the "
    "device is told to resend.",
    ["outcome"],
)
READINGS_CHARGED = READINGS.labels(outcome="charged")
READINGS_DUPLICATE = READINGS.labels(outcome="duplicate")
READINGS_REFUSED = READINGS.labels(outcome="refused")
READINGS_BUSY = READINGS.labels(outcome="busy")

BUSY_ANSWERS = Counter(
    "meterline_busy_answers", "Busy answers sent to devices (WebSocket busy, HTTP 503)."
)
CONNECTS_DEFERRED = Counter(
    "meterline_connects_deferred",
    "Device connects told try_again_later with a turn of their own: more were in hand.",
)

# --- latency --------------------------------------------------------------------

RATING_BATCH_READINGS = Histogram(
    "meterline_rating_batch_readings",
    "Readings per batch rated by a rating worker.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
)
RATING_BATCH_SECONDS = Histogram(
    "meterline_rating_batch_seconds",
    "Time a rating worker takes to rate and commit a batch.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ACK_SECONDS = Histogram(
    "meterline_ack_seconds",
    "Device frame to ack as the web process sees it: from the frame's arrival to its ack.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

# --- connections ------------------------------------------------------------------
# "liveall": one series per live process (a `pid` label in multiprocess mode),
# as asked, and a process that has exited drops out instead of reporting its
# last value for ever; sum() by instance gives the host's total.

DEVICE_CONNECTIONS = Gauge(
    "meterline_device_connections",
    "Open authenticated device WebSocket connections of this process.",
    multiprocess_mode="liveall",
)
DASHBOARD_CONNECTIONS = Gauge(
    "meterline_dashboard_connections",
    "Open authorised dashboard WebSocket connections of this process.",
    multiprocess_mode="liveall",
)
WAITING_READINGS = Gauge(
    "meterline_waiting_readings",
    "Readings this web process holds for the rating workers: waiting for a batch, or in "
    "a batch not yet answered (at most METERLINE_MAX_WAITING_READINGS; beyond, busy).",
    multiprocess_mode="liveall",
)

# --- failures -------------------------------------------------------------------

CHANNEL_LAYER_ERRORS = Counter(
    "meterline_channel_layer_errors",
    "Channel-layer calls that failed (ChannelFull, Redis errors, timeouts), by operation.",
    ["operation"],
)
LAYER_SEND_ERRORS = CHANNEL_LAYER_ERRORS.labels(operation="send")
LAYER_GROUP_SEND_ERRORS = CHANNEL_LAYER_ERRORS.labels(operation="group_send")
LAYER_RECEIVE_ERRORS = CHANNEL_LAYER_ERRORS.labels(operation="receive")

# Declared for the webhooks, alerts and invoicing work (CONTRACT.md sections 6, 7);
# the label values are made here so the series show, at zero, from the start.
WEBHOOK_DELIVERIES = Counter(
    "meterline_webhook_deliveries", "Webhook delivery attempts, by outcome.", ["outcome"]
)
WEBHOOK_DELIVERED = WEBHOOK_DELIVERIES.labels(outcome="delivered")
WEBHOOK_FAILED = WEBHOOK_DELIVERIES.labels(outcome="failed")
ALERTS_FIRED = Counter("meterline_alerts_fired", "Alerts fired, by kind.", ["kind"])
ALERTS_FIRED_BY_KIND = {
    kind: ALERTS_FIRED.labels(kind=kind) for kind in ("spend_above", "usage_above", "balance_below")
}
PERIOD_CLOSE_FAILURES = Counter(
    "meterline_period_close_failures", "Billing periods that failed to close (retried)."
)


def readings_rated(*, charged: int, duplicates: int, refused: int) -> None:
    """Count a rated batch's readings: called on commit (metering/rating/service.py)."""
    if charged:
        READINGS_CHARGED.inc(charged)
    if duplicates:
        READINGS_DUPLICATE.inc(duplicates)
    if refused:
        READINGS_REFUSED.inc(refused)


# --- exposition -------------------------------------------------------------------


def exposition() -> tuple[bytes, str]:
    """The text page and its content type: every process of the host in multiprocess mode."""
    if not MULTIPROC_DIR:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    _forget_dead_processes()
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=MULTIPROC_DIR)
    return generate_latest(registry), CONTENT_TYPE_LATEST


def _mark_this_process_dead() -> None:
    # prometheus-client's multiprocess docs: the live gauges of a process that
    # ends must be removed with mark_process_dead(pid), or they outlive it.
    with contextlib.suppress(OSError):
        multiprocess.mark_process_dead(os.getpid(), MULTIPROC_DIR)


def _forget_dead_processes() -> None:
    """Remove the live gauges of processes killed before their atexit hook could
    (SIGKILL, os._exit in forked pool children). The directory belongs to the
    processes of one host and PID namespace, so a pid that is gone is dead."""
    for path in glob.glob(os.path.join(MULTIPROC_DIR, "gauge_live*_*.db")):
        pid = os.path.basename(path)[: -len(".db")].rpartition("_")[2]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):  # another scrape got there first
                os.remove(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


if MULTIPROC_DIR:
    atexit.register(_mark_this_process_dead)
