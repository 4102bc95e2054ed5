"""project/metrics.py: readings counted at commit, and every process of a host added up.

The multiprocess tests run real processes: prometheus-client picks its mode
when it is first imported, from PROMETHEUS_MULTIPROC_DIR, so only a process
started with the variable set shows what the supervised processes do.
"""

import os
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import DatabaseError
from django.utils import timezone
from prometheus_client import REGISTRY

from metering.parsing import ReadingIn
from metering.rating import FrameIn, frames_rate, readings_rate
from tests.factories import make_account, make_meter, make_tariff

ROOT = Path(__file__).resolve().parents[2]


def readings(outcome: str) -> float:
    return REGISTRY.get_sample_value("meterline_readings_total", {"outcome": outcome}) or 0.0


def counts() -> dict[str, float]:
    return {outcome: readings(outcome) for outcome in ("charged", "duplicate", "refused")}


def delta(reading_id: str, quantity: str = "1") -> ReadingIn:
    return ReadingIn(id=reading_id, ts=timezone.now(), quantity=Decimal(quantity))


def grown(before: dict[str, float]) -> dict[str, float]:
    return {outcome: value - before[outcome] for outcome, value in counts().items()}


@pytest.fixture
def meter(db):
    meter, _ = make_meter(make_account(), make_tariff())
    return meter


# --- counted where readings are rated, at commit ---------------------------------


def test_charged_readings_count_when_the_batch_commits(meter, django_capture_on_commit_callbacks):
    before = counts()
    with django_capture_on_commit_callbacks(execute=True):
        readings_rate(meter_id=meter.id, readings=[delta("a"), delta("b"), delta("c")])
        assert grown(before) == {"charged": 0, "duplicate": 0, "refused": 0}  # not yet committed
    assert grown(before) == {"charged": 3, "duplicate": 0, "refused": 0}


def test_a_resend_counts_as_duplicate_never_twice_as_charged(
    meter, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        readings_rate(meter_id=meter.id, readings=[delta("a"), delta("b")])
    before = counts()
    with django_capture_on_commit_callbacks(execute=True):
        readings_rate(meter_id=meter.id, readings=[delta("a"), delta("b"), delta("c")])
    assert grown(before) == {"charged": 1, "duplicate": 2, "refused": 0}


def test_readings_refused_by_rating_count_as_refused(meter, django_capture_on_commit_callbacks):
    other, _ = make_meter(meter.account, make_tariff())
    other.active = False
    other.save()
    before = counts()
    with django_capture_on_commit_callbacks(execute=True):
        frames_rate(
            [
                FrameIn(meter.id, [delta("ok")]),
                FrameIn(other.id, [delta("x"), delta("y")]),
                FrameIn("met_unknown", [delta("z")]),
            ]
        )
    assert grown(before) == {"charged": 1, "duplicate": 0, "refused": 3}


@pytest.mark.django_db(transaction=True)
def test_a_batch_rolled_back_counts_nothing(monkeypatch):
    meter, _ = make_meter(make_account(), make_tariff())

    def fails(*args, **kwargs):
        raise DatabaseError("the database went away after rating")

    # The last write of a batch, after every reading is rated and inserted.
    monkeypatch.setattr("metering.rating.writing.rows_update", fails)
    before = counts()
    with pytest.raises(DatabaseError):
        readings_rate(meter_id=meter.id, readings=[delta("a"), delta("b")])
    assert grown(before) == {"charged": 0, "duplicate": 0, "refused": 0}
    monkeypatch.undo()
    readings_rate(meter_id=meter.id, readings=[delta("a"), delta("b")])  # really committed
    assert grown(before) == {"charged": 2, "duplicate": 0, "refused": 0}


# --- multiprocess mode: every process of the host ----------------------------------


def python(code: str, directory: Path, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        **kwargs,
    )


SCRAPE = """
    from project.metrics import exposition
    body, content_type = exposition()
    print(content_type)
    print(body.decode())
"""


def scrape(directory: Path) -> str:
    return python(SCRAPE, directory).stdout


def test_the_counters_of_every_process_are_added_up(tmp_path):
    for charged in (3, 4):
        python(
            f"""
            from project.metrics import READINGS_CHARGED, READINGS_BUSY
            READINGS_CHARGED.inc({charged})
            READINGS_BUSY.inc(1)
            """,
            tmp_path,
        )
    page = scrape(tmp_path)
    assert page.startswith("text/plain; version=1.0.0; charset=utf-8")
    assert 'meterline_readings_total{outcome="charged"} 7.0' in page
    assert 'meterline_readings_total{outcome="busy"} 2.0' in page
    assert 'meterline_readings_total{outcome="duplicate"} 0.0' in page
    for declared in (
        "meterline_busy_answers_total 0.0",
        'meterline_channel_layer_errors_total{operation="group_send"} 0.0',
        'meterline_webhook_deliveries_total{outcome="delivered"} 0.0',
        'meterline_alerts_fired_total{kind="balance_below"} 0.0',
        "meterline_period_close_failures_total 0.0",
        "meterline_rating_batch_seconds_count 0.0",
    ):
        assert declared in page


def test_histograms_of_every_process_are_added_up(tmp_path):
    for size in (1, 300):
        python(
            f"""
            from project.metrics import RATING_BATCH_READINGS
            RATING_BATCH_READINGS.observe({size})
            """,
            tmp_path,
        )
    page = scrape(tmp_path)
    assert 'meterline_rating_batch_readings_bucket{le="1.0"} 1.0' in page
    assert 'meterline_rating_batch_readings_bucket{le="200.0"} 1.0' in page
    assert 'meterline_rating_batch_readings_bucket{le="500.0"} 2.0' in page
    assert "meterline_rating_batch_readings_count 2.0" in page
    assert "meterline_rating_batch_readings_sum 301.0" in page


def test_connections_are_shown_per_live_process_only(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\n"
            "from project.metrics import DEVICE_CONNECTIONS\n"
            "DEVICE_CONNECTIONS.inc(2)\n"
            "print('ready', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        cwd=ROOT,
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "ready\n"
        # One that exits normally (its atexit hook), one killed before it could.
        python(
            "from project.metrics import DEVICE_CONNECTIONS; DEVICE_CONNECTIONS.inc(5)", tmp_path
        )
        python(
            "import os\n"
            "from project.metrics import DEVICE_CONNECTIONS\n"
            "DEVICE_CONNECTIONS.inc(7)\n"
            "os._exit(0)\n",
            tmp_path,
        )
        page = scrape(tmp_path)
        gauges = [line for line in page.splitlines() if line.startswith("meterline_device_conn")]
        assert f'meterline_device_connections{{pid="{holder.pid}"}} 2.0' in gauges
        assert not any(line.endswith((" 5.0", " 7.0")) for line in gauges), gauges
    finally:
        holder.communicate(input="", timeout=30)
    page = scrape(tmp_path)
    assert f'pid="{holder.pid}"' not in page
    assert not [name for name in os.listdir(tmp_path) if name.startswith("gauge_live")]
