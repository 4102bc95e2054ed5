"""The baselines' processes beside a devtools.stack.Stack, on its Redis and PostgreSQL.

    baselines = baselines_start(stack, workers=2)   # baselines.naive, baselines.http: base URLs
    baselines_stop(stack)

(a): a daphne serving naive_channels.py and `workers` Channels workers; (b): a WSGI server
(wsgi.py, Twisted's threads) and a Celery worker of `workers` pool processes on the
"baseline" queue. They are the stack's processes (Stack.processes), so Stack.stop stops
them and scripts/bench.py's CPU accounting sees them.
"""

import sys
from dataclasses import dataclass

from devtools.stack import BIN_DIR, REPO_ROOT, Stack, free_port, http_json, wait_for

NAMES = ("naive-daphne", "naive-worker-", "http-web", "http-celery")
SETTINGS = "scripts.baselines.settings"


@dataclass(frozen=True)
class Baselines:
    naive: str  # base URL of (a)'s daphne
    http: str  # base URL of (b)'s WSGI server


def baselines_start(stack: Stack, *, workers: int) -> Baselines:
    port = free_port()
    app = "scripts.baselines.naive_channels:application"
    daphne = [str(BIN_DIR / "daphne"), "-b", "127.0.0.1", "-p", str(port), app]
    stack.spawn("naive-daphne", daphne)
    for n in range(1, workers + 1):
        stack.spawn(f"naive-worker-{n}", [sys.executable, "scripts/baselines/naive_channels.py"])
    baselines = Baselines(naive=f"http://127.0.0.1:{port}", http=_http_start(stack, workers))
    for base in (baselines.naive, baselines.http):
        wait_for(
            lambda base=base: http_json("GET", f"{base}/healthz", timeout=5)[0] == 200,
            timeout=60,
            what=f"{base}/healthz",
        )
    return baselines


def _http_start(stack: Stack, workers: int) -> str:
    """(b)'s web process and Celery worker; the web process's base URL."""
    port = free_port()
    listen = f"tcp:{port}:interface=127.0.0.1"
    wsgi = ["web", "--listen", listen, "--wsgi", "scripts.baselines.wsgi.application"]
    web_env = stack.app_env() | {
        "DJANGO_SETTINGS_MODULE": f"{SETTINGS}_wsgi",
        "PYTHONPATH": str(REPO_ROOT),  # twistd imports the application from the repo
    }
    stack.spawn("http-web", [str(BIN_DIR / "twistd"), "-n", "--pidfile=", *wsgi], web_env)
    celery = [str(BIN_DIR / "celery"), "-A", "project", "worker", "-Q", "baseline"]
    options = ["-c", str(workers), "-n", "baseline@%h", "-l", "warning"]
    stack.spawn(
        "http-celery", [*celery, *options], stack.app_env() | {"DJANGO_SETTINGS_MODULE": SETTINGS}
    )
    return f"http://127.0.0.1:{port}"


def baselines_stop(stack: Stack) -> None:
    for process in [p for p in stack.processes if p.name.startswith(NAMES)]:
        process.stop()
        stack.processes.remove(process)
