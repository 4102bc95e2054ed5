"""The beat's closing run reads a fixed number of queries for the accounts with nothing due,
however many there are (it runs every minute over every account)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.invoicing import periods_close_due
from tests.factories import make_account, make_meter, make_tariff

pytestmark = pytest.mark.django_db


def queries_of_a_run(accounts: int) -> int:
    tariff = make_tariff()
    for _ in range(accounts):
        make_meter(make_account(), tariff)  # created now: its first month has not ended
    with CaptureQueriesContext(connection) as captured:
        assert periods_close_due() == []
    return len(captured)


def test_accounts_with_nothing_due_cost_no_queries_of_their_own():
    assert queries_of_a_run(3) == queries_of_a_run(30)
