"""The fan-out fleet scenario (scripts/fleet/fanout.py), short: a hundred dashboards on one
account through the web process's hub, and one on each of thirty others. Every reading is
acked and charged once, every dashboard sees every charge event of its account in order,
none missing, none twice, no mid-stream snapshot. No figure is judged here."""

import pytest

from scripts.fleet import fanout

pytestmark = pytest.mark.integration


def test_a_hundred_dashboards_on_one_account_see_every_charge_in_order(stack):
    result = fanout.run(stack, seconds=4, dashboards=100, others=30)
    assert result["problems"] == []
    assert result["ok"]
    assert result["popular"]["dashboards"] == 100
    assert result["others"]["dashboards"] == 30
    assert result["popular"]["acked"] > 0 and result["others"]["acked"] > 0
