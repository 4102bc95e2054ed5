"""GET /healthz: is this web process able to serve? Checks the database, Redis, and counts workers.

Answers 503 naming the failing part when the database or Redis is down.
Zero live rating workers is reported, not failed: a web process pulled out
of a load balancer would not bring them back.
"""

import logging
import threading

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from workers.heartbeat import workers_alive

logger = logging.getLogger(__name__)

_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def _redis(url: str) -> redis.Redis:
    """One client (and connection pool) per Redis URL, made on first use, not at import."""
    with _clients_lock:
        client = _clients.get(url)
        if client is None:
            client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
            _clients[url] = client
    return client


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        logger.exception("healthz: database check failed")
        return False
    return True


def _redis_workers() -> int | None:
    """Live rating workers (their heartbeat keys, on the first Redis), or None when
    any Redis server of the channel layer's shards does not answer."""
    try:
        for url in settings.REDIS_URLS:
            _redis(url).ping()
        return workers_alive(_redis(settings.REDIS_URLS[0]))
    except Exception:
        logger.exception("healthz: redis check failed")
        return None


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    database = _database_ok()
    workers = _redis_workers()
    healthy = database and workers is not None
    body = {
        "status": "ok" if healthy else "error",
        "database": "ok" if database else "error",
        "redis": "ok" if workers is not None else "error",
        "workers": workers or 0,
    }
    return JsonResponse(body, status=200 if healthy else 503)
