"""The fast tests' database: a throwaway PostgreSQL cluster, or SQLite for the SQLite job.

A pytest plugin (`-p tests.postgres` in pyproject.toml), loaded before pytest-django
reads the settings, so that DATABASE_URL names the database the way it does in
production. The cluster itself starts when Django is about to create its test
database (tests/conftest.py's `django_db_modify_db_settings`), so a run with no
database test never starts one, and is stopped and deleted when pytest exits.

`METERLINE_TEST_DB=sqlite` runs on in-memory SQLite instead, the default database
of `make run`: `make test` runs the tests marked `sqlite` that way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import urllib.parse
from pathlib import Path

import pytest

from devtools.stack import as_postgres_user, chown_to_postgres, pg_binary

SQLITE_URL = "sqlite:///:memory:"
USER = "meterline"
# Only the name of the socket file: the cluster listens on no TCP port.
PORT = 5432


def chosen_database() -> str:
    choice = os.environ.get("METERLINE_TEST_DB", "postgres")
    if choice not in ("postgres", "sqlite"):
        raise pytest.UsageError(f"METERLINE_TEST_DB is {choice!r}: 'postgres' or 'sqlite'")
    return choice


class Cluster:
    """One PostgreSQL cluster in its own temp dir, reached over a Unix socket there."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="meterline-pytest-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.log = self.root / "postgres.log"
        self.started = False

    @property
    def url(self) -> str:
        host = urllib.parse.quote(str(self.sockets), safe="")
        return f"postgres://{USER}@{host}:{PORT}/{USER}"

    def start(self) -> None:
        if self.started:
            return
        # initdb and postgres refuse root: as root they run as `postgres`, which
        # must reach its directories inside our (0700) temp dir.
        self.root.chmod(0o755)
        for directory in (self.data, self.sockets):
            directory.mkdir(mode=0o700)
            chown_to_postgres(directory)
        self._run(
            "initdb",
            *("-D", str(self.data), "-A", "trust", "-U", USER),
            *("--encoding=UTF8", "--locale=C", "--no-sync"),
        )
        self.log.touch()
        chown_to_postgres(self.log)
        # No durability: the cluster lives for one test session.
        options = (
            f"-p {PORT} -k {self.sockets} -c listen_addresses='' -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            "pg_ctl",
            *("-w", "-t", "60", "-D", str(self.data), "-l", str(self.log)),
            *("-o", options, "start"),
        )
        self.started = True

    def stop(self) -> None:
        if self.started:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, program: str, *args: str, check: bool = True) -> None:
        result = subprocess.run(
            as_postgres_user([pg_binary(program), *args]),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{program} failed ({result.returncode}):\n{result.stdout}{result.stderr}\n{log}"
            )


_cluster_key = pytest.StashKey[Cluster]()


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser, args):
    # A wrapper runs before every plugin's hook, pytest-django's settings load included.
    if chosen_database() == "sqlite":
        os.environ["DATABASE_URL"] = SQLITE_URL
    else:
        cluster = Cluster()
        early_config.stash[_cluster_key] = cluster
        early_config.add_cleanup(cluster.stop)
        os.environ["DATABASE_URL"] = cluster.url
    return (yield)


def cluster_start(config: pytest.Config) -> None:
    """Start this session's cluster, if it runs on PostgreSQL and has not yet."""
    cluster = config.stash.get(_cluster_key, None)
    if cluster is not None:
        cluster.start()


def on_postgres(config: pytest.Config) -> bool:
    return _cluster_key in config.stash


def pytest_report_header(config: pytest.Config) -> str:
    cluster = config.stash.get(_cluster_key, None)
    where = f"PostgreSQL in {cluster.root}" if cluster else "in-memory SQLite"
    return f"fast tests' database: {where} (METERLINE_TEST_DB=postgres|sqlite)"
