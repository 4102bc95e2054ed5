"""Worker liveness for /healthz: each runworker refreshes a Redis key with a TTL."""

import contextlib
import logging
import os
import socket
import threading

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

WORKER_KEY_PREFIX = "meterline:worker:"


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def worker_key() -> str:
    return f"{WORKER_KEY_PREFIX}{socket.gethostname()}:{os.getpid()}"


def heartbeat_start(*, stop: threading.Event) -> threading.Thread:
    """Refresh this process's key until `stop` is set, then delete it."""
    ttl = settings.METERLINE_WORKER_TTL_SECONDS
    interval = settings.METERLINE_WORKER_HEARTBEAT_SECONDS

    def beat() -> None:
        client, key = redis_client(), worker_key()
        while True:
            try:
                client.set(key, "alive", ex=ttl)
            except redis.RedisError as exc:
                logger.warning("worker heartbeat failed: %s", exc)
            if stop.wait(interval):
                break
        with contextlib.suppress(redis.RedisError):
            client.delete(key)

    thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
    thread.start()
    return thread


def workers_alive(client: redis.Redis) -> int:
    """Workers whose heartbeat key has not expired."""
    return sum(1 for _ in client.scan_iter(match=f"{WORKER_KEY_PREFIX}*", count=100))
