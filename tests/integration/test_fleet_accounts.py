"""The accounts fleet scenario (scripts/fleet/accounts.py), short: many accounts streaming at
once through pipelined batches, with a dashboard each. Every reading is acked and charged
once (each account's total to the cent), every dashboard sees every charge event in order,
none twice. No figure is judged here: `make bench-fleet` measures them."""

import pytest

from scripts.fleet import accounts

pytestmark = pytest.mark.integration


def test_thirty_accounts_at_once_lose_nothing_double_nothing_and_keep_order(stack):
    result = accounts.run(stack, seconds=3, accounts=30, meters=4)
    assert result["problems"] == []
    assert result["ok"]
    for phase in ("single", "accounts", "paced"):
        assert result[phase]["acked"] > 0, phase
    assert result["paced"]["dashboards"] == 30
