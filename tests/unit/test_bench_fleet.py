"""make bench-fleet's parts that need no stack: the scenario table, the profile summary and
the websockets echo limit (scripts/bench_fleet.py, scripts/spy.py, scripts/raw_limits.py)."""

from scripts.bench_fleet import cpu_group, flatten, ratios, scenario_rows
from scripts.raw_limits import echo_rate
from scripts.spy import stacks_summary

GOALS = {"ack_ms.p99": ("<=", 100), "rss_kib_per_connection": ("<=", 30)}


def test_scenario_figures_are_flattened_and_judged_on_their_median():
    runs = [
        {"ack_ms": {"p99": 80.0}, "rss_kib_per_connection": 31, "ok": True, "mode": "storm"},
        {"ack_ms": {"p99": 120.0}, "rss_kib_per_connection": 29, "ok": True, "mode": "storm"},
        {"ack_ms": {"p99": 90.0}, "rss_kib_per_connection": 33, "ok": False, "mode": "storm"},
    ]
    rows, verdicts = scenario_rows(runs, GOALS)
    by_figure = {row[0]: row[1:] for row in rows}
    assert by_figure["ack_ms.p99"] == ["90.0 (80.0 to 120.0)", "<= 100", "PASS"]
    assert by_figure["rss_kib_per_connection"] == ["31.0 (29.0 to 33.0)", "<= 30", "FAIL"]
    assert by_figure["ok"][1:] == ["True in every run", "FAIL"]
    assert by_figure["mode"] == ["storm", "", ""]
    assert verdicts == [True, False, False]


def test_ratios_skip_runs_missing_a_figure():
    runs = [{"a": 10, "b": 4}, {"a": None, "b": 4}, {"a": 3, "b": 0}]
    assert ratios(runs, lambda r: r["a"], lambda r: r["b"]) == [2.5, None, None]
    assert flatten({"x": {"y": {"z": 1}}, "w": 2}) == {"x.y.z": 1, "w": 2}


def test_the_baselines_processes_count_as_web_and_workers():
    groups = {part: cpu_group(part) for part in ("naive-daphne", "http-web", "daphne")}
    assert set(groups.values()) == {"web"}
    assert {cpu_group(p) for p in ("workers", "naive-worker-2", "http-celery")} == {"workers"}
    assert cpu_group("celery") == "other"


def test_the_profile_counts_own_samples_and_meterline_frames_under_them(tmp_path):
    raw = tmp_path / "daphne.txt"
    raw.write_text(
        "<module> (daphne:1);rate (metering/rating/service.py:10);execute (psycopg/cursor.py:5) 3\n"
        "<module> (daphne:1);rate (metering/rating/service.py:10) 1\n"
    )
    summary = stacks_summary(raw)
    assert summary["samples"] == 4
    assert summary["self"] == [
        ("execute (psycopg/cursor.py)", 75.0),
        ("rate (metering/rating/service.py)", 25.0),
    ]
    assert summary["ours"] == [("rate (metering/rating/service.py)", 100.0)]


def test_the_echo_server_echoes_frames_back():
    echo = echo_rate(0.5)
    assert echo["echo_frames_per_s"] > 0
    assert echo["echo_server_core_share"] > 0
