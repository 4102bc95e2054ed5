"""Fixtures for the integration tests: one real Meterline stack per test session.

The stack (Redis, PostgreSQL, daphne, two rating workers) starts on first use
and is stopped at the end of the session. Its logs stay in a temp dir, named
in the terminal summary and tailed there when a test failed.

Once a stack has stopped, none of its logs may show a key or token it handed
out (`Stack.secrets`): its fixture's teardown fails the run otherwise, whatever
order the tests ran in.
"""

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from devtools.stack import Stack, tail
from tests.integration.stack import make_stack

_stacks: list[Stack] = []  # every stack of the session, all made by _running_stack


def secrets_in_logs(current: Stack) -> list[str]:
    """What each log of a stack shows of its secrets (their first 12 characters)."""
    found = []
    for log in current.log_files():
        text = log.read_text(errors="replace")
        leaked = sorted(secret[:12] for secret in current.secrets if secret in text)
        if leaked:
            found.append(f"{log} shows secrets starting {leaked}")
    return found


@contextmanager
def _running_stack(database: str) -> Iterator[Stack]:
    current = make_stack(database)
    _stacks.append(current)
    try:
        current.start()
        yield current
    finally:
        current.stop()
        # Every process has stopped: its logs are whole.
        leaks = secrets_in_logs(current)
        if leaks:
            pytest.fail("\n".join(leaks))


@pytest.fixture(scope="session")
def stack():
    with _running_stack("postgres") as current:
        yield current


@pytest.fixture(scope="session")
def sqlite_stack():
    """The same processes on SQLite, the default database of `make run`."""
    with _running_stack("sqlite") as current:
        yield current


@pytest.fixture(scope="module")
def fault_stack():
    """A stack of the module's own, for tests that restart its parts."""
    with _running_stack("postgres") as current:
        yield current


@pytest.fixture(params=["postgres", "sqlite"])
def any_stack(request):
    return request.getfixturevalue("stack" if request.param == "postgres" else "sqlite_stack")


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    for current in _stacks:
        failed = bool(terminalreporter.stats.get("failed") or terminalreporter.stats.get("error"))
        terminalreporter.section("meterline integration stack")
        terminalreporter.write_line(f"logs in {current.tmp / 'logs'}")
        for log in current.log_files():
            terminalreporter.write_line(f"  {log}")
        if failed:
            for log in current.log_files():
                terminalreporter.write_sep("-", f"tail of {log.name}")
                terminalreporter.write_line(tail(log, 60))
        else:
            # Nothing to look at: keep the disk clean.
            shutil.rmtree(current.tmp, ignore_errors=True)
            terminalreporter.write_line("(all passed; temp dir removed)")
        # The database files are never worth keeping.
        shutil.rmtree(current.pg_data, ignore_errors=True)
