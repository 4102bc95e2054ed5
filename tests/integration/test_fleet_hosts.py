"""Fleet scenario "hosts" in short (scripts/fleet/hosts.py): Meterline on three hosts made
of network namespaces (scripts/netns_hosts.py), one app host cut off mid-stream.

Devices on both app hosts and dashboards on both, app1 cut off halfway: its devices
fail over to app2, every reading sent is answered and charged exactly once, and every
dashboard comes to the database's period total. Needs root (CI runs as root); skipped,
saying why, where network namespaces cannot be made.
"""

import shutil
import tempfile
from pathlib import Path

import pytest

from scripts.fleet import hosts
from scripts.netns_hosts import BRIDGE, HOSTS, ip, netns_unavailable

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def namespaces_permitted():
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def hosts_tmp():
    """The hosts' files, where the postgres user can reach them (pytest's tmp_path lies
    under a directory only root may enter)."""
    tmp = Path(tempfile.mkdtemp(prefix="meterline-netns-hosts-"))
    yield tmp
    shutil.rmtree(tmp, ignore_errors=True)


def test_a_host_cut_off_mid_stream_loses_and_doubles_nothing(hosts_tmp):
    figures = hosts.run(None, devices=40, accounts=2, seconds=16, tmp=hosts_tmp)
    check = figures["check"]
    assert check["readings"] > 400, figures
    assert check["unanswered"] == check["errors"] == 0, figures
    assert check["lost"] == check["doubled"] == 0, figures
    assert figures["cut"]["not_recovered"] == 0, figures  # app1's devices all on app2
    assert figures["dashboards"]["all_totals_exact"], figures
    assert figures["ok"] is True
    # ...and the hosts are gone.
    namespaces = ip("netns", "list").stdout
    assert not any(host.name in namespaces for host in HOSTS)
    assert ip("link", "show", BRIDGE, check=False).returncode != 0
