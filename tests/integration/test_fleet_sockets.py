"""Fleet scenario "sockets" in short (scripts/fleet/sockets.py): 1,000 device sockets on a
daphne of their own, streaming, then all reconnecting at once after it restarts.

Every reading sent is answered, each meter's usage is exactly its readings acked (none
lost, none charged twice), and every device reconnects and has an ack on its new
connection. The scenario measures times too; nothing here asserts on them.
"""

import pytest

from scripts.fleet import sockets

pytestmark = pytest.mark.integration


def test_a_thousand_sockets_reconnecting_at_once_lose_and_double_nothing(stack):
    figures = sockets.run(stack, devices=1000, accounts=4, interval=5.0, seconds=10, swarms=2)
    check = figures["check"]
    assert check["readings"] > 2000, figures  # the steady phase, the storm's, the rest
    assert check["unanswered"] == check["errors"] == 0, figures
    assert check["lost"] == check["doubled"] == 0, figures
    storm = figures["storm"]
    assert storm["not_recovered"] == 0 and storm["all_acked_s"] is not None, figures
    assert figures["ok"] is True
