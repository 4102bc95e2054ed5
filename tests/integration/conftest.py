"""Fixtures for the integration tests: one real Meterline stack per test session.

The stack (Redis, PostgreSQL, daphne, two rating workers) starts on first use
and is stopped at the end of the session. Its logs stay in a temp dir, named
in the terminal summary and tailed there when a test failed.
"""

import shutil

import pytest

from tests.integration.stack import Stack, make_stack, tail

_stacks: list[Stack] = []


def _running_stack(database: str):
    current = make_stack(database)
    _stacks.append(current)
    try:
        current.start()
    except BaseException:
        current.stop()
        raise
    return current


@pytest.fixture(scope="session")
def stack():
    current = _running_stack("postgres")
    yield current
    current.stop()


@pytest.fixture(scope="session")
def sqlite_stack():
    """The same processes on SQLite, the default database of `make run`."""
    current = _running_stack("sqlite")
    yield current
    current.stop()


@pytest.fixture(scope="module")
def fault_stack():
    """A stack of the module's own, for tests that restart its parts."""
    current = _running_stack("postgres")
    yield current
    current.stop()


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
