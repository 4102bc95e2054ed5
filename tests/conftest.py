"""Fixtures shared across test folders: the session's database, an operator API key and a
client that sends it; and which tests make up the SQLite job."""

from pathlib import Path

import pytest
from rest_framework.test import APIClient

from tests import postgres
from tests.factories import make_operator_key

# `make test` runs these again on in-memory SQLite (METERLINE_TEST_DB=sqlite pytest -m sqlite),
# so that `make run`'s embedded default stays tested: the rating and invoicing services
# (money in SQLite's decimal columns, the Python paths of billing/bulk.py), the pure
# pricing and parsing units, and a device from socket to charge.
SQLITE_JOB = (
    "tests/billing/",
    "tests/unit/test_pricing.py",
    "tests/unit/test_parsing.py",
    "tests/consumers/test_device.py",
    "tests/ocpp/test_central.py",  # charging sessions rated, totalled and completed
)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings, request) -> None:
    # pytest-django's hook "just before the databases are configured": the first test
    # that needs the database starts the cluster (tests/postgres.py stops it).
    postgres.cluster_start(request.config)


@pytest.fixture(scope="session")
def django_db_keepdb(django_db_keepdb, request) -> bool:
    # The cluster is thrown away whole. Dropping its database first would only fail on
    # the connections that executor threads keep open (CONN_MAX_AGE), as production does.
    return django_db_keepdb or postgres.on_postgres(request.config)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(config.rootpath)
    for prefix in SQLITE_JOB:
        if not (root / prefix).exists():
            raise pytest.UsageError(f"SQLITE_JOB in tests/conftest.py names {prefix}: not there")
    for item in items:
        if item.nodeid.startswith(SQLITE_JOB):
            item.add_marker(pytest.mark.sqlite)


@pytest.fixture
def operator_key(db) -> str:
    return make_operator_key()


@pytest.fixture
def api(operator_key) -> APIClient:
    """An API client authenticated as the operator."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {operator_key}")
    return client
