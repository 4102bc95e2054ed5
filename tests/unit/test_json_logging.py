"""LOG_FORMAT=json: the formatter, the role filter, and the settings that pick them."""

import io
import json
import logging
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from project.env import env_choice
from project.logging import JsonFormatter, RoleFilter, process_role

REPO_ROOT = Path(__file__).resolve().parents[2]
ISO_MS_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO meterline\.test hello world$")


@pytest.fixture
def json_log():
    """A logger writing JSON to a buffer through the role filter; returns (logger, lines)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RoleFilter("worker"))
    logger = logging.getLogger("meterline.test.json")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False

    def lines() -> list[str]:
        return stream.getvalue().splitlines()

    yield logger, lines
    logger.removeHandler(handler)
    logger.propagate = True


def test_formatter_writes_the_common_fields(json_log):
    logger, lines = json_log
    logger.warning("rated %s readings", 3)
    [line] = lines()
    entry = json.loads(line)
    assert ISO_MS_UTC.match(entry["time"]), entry["time"]
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "meterline.test.json"
    assert entry["message"] == "rated 3 readings"
    assert entry["role"] == "worker"
    assert entry["pid"] == os.getpid()
    assert not {"meter", "account", "batch", "exc_info"} & entry.keys()


def test_formatter_carries_meter_account_and_batch(json_log):
    logger, lines = json_log
    logger.info("charged", extra={"meter": "mtr_1", "account": "acc_1", "batch": 7})
    logger.info("only a meter", extra={"meter": "mtr_2", "task_args": ["not", "copied"]})
    first, second = (json.loads(line) for line in lines())
    assert (first["meter"], first["account"], first["batch"]) == ("mtr_1", "acc_1", 7)
    assert second["meter"] == "mtr_2"
    assert "account" not in second and "task_args" not in second


def test_traceback_stays_inside_one_object(json_log):
    logger, lines = json_log
    try:
        raise ValueError("bad reading\nsecond line")
    except ValueError:
        logger.exception("rating failed", extra={"batch": 2})
    [line] = lines()  # one line, however many lines the traceback has
    entry = json.loads(line)
    assert entry["level"] == "ERROR"
    assert entry["message"] == "rating failed"
    assert entry["exc_info"].startswith("Traceback (most recent call last):")
    assert "ValueError: bad reading\nsecond line" in entry["exc_info"]
    assert entry["batch"] == 2


def test_role_filter_keeps_a_role_already_set():
    record = logging.makeLogRecord({"msg": "x", "role": "beat"})
    assert RoleFilter("web").filter(record) is True
    assert record.role == "beat"
    record = logging.makeLogRecord({"msg": "x"})
    RoleFilter("web").filter(record)
    assert record.role == "web"


@pytest.mark.parametrize(
    ("argv", "role"),
    [
        (["/srv/.venv/bin/daphne", "-b", "0.0.0.0", "project.asgi:application"], "web"),
        (["/srv/.venv/bin/daphne", "--fd", "0", "project.asgi:application"], "web"),
        (["/usr/lib/python3/site-packages/daphne/__main__.py", "project.asgi:app"], "web"),
        (["manage.py", "runworker", "rating"], "worker"),
        (["/srv/manage.py", "runserver"], "web"),
        (["/srv/.venv/bin/celery", "-A", "project", "-q", "worker", "-l", "info"], "celery"),
        (["/srv/.venv/bin/celery", "-A", "project", "worker", "-Q", "beat"], "celery"),
        (["/srv/.venv/bin/celery", "-A", "project", "-q", "beat", "-s", "/tmp/s"], "beat"),
        (["manage.py", "migrate"], "manage"),
        (["manage.py"], "manage"),
        ([], "manage"),
    ],
)
def test_role_from_the_command_line(argv, role):
    assert process_role(argv, environ={}) == role


def test_role_from_the_environment_wins():
    assert process_role(["daphne"], environ={"METERLINE_ROLE": "web-2"}) == "web-2"


def test_env_choice(monkeypatch):
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    assert env_choice("LOG_FORMAT", ("text", "json"), default="text") == "text"
    monkeypatch.setenv("LOG_FORMAT", " JSON ")
    assert env_choice("LOG_FORMAT", ("text", "json"), default="text") == "json"
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(ImproperlyConfigured, match="LOG_FORMAT"):
        env_choice("LOG_FORMAT", ("text", "json"), default="text")


def _settings(monkeypatch, log_format: str | None) -> dict:
    """project/settings.py evaluated afresh under LOG_FORMAT."""
    if log_format is None:
        monkeypatch.delenv("LOG_FORMAT", raising=False)
    else:
        monkeypatch.setenv("LOG_FORMAT", log_format)
    monkeypatch.setenv("METERLINE_ROLE", "web")
    return runpy.run_path(str(REPO_ROOT / "project" / "settings.py"))


def test_settings_pick_the_formatter(monkeypatch):
    text = _settings(monkeypatch, None)
    assert text["LOG_FORMAT"] == "text"
    assert text["LOGGING"]["handlers"]["console"]["formatter"] == "plain"
    assert text["LOGGING"]["formatters"]["plain"] == {
        "format": "%(asctime)s %(levelname)s %(name)s %(message)s"
    }
    assert text["LOGGING"]["loggers"] == {"django.channels.server": {"level": "WARNING"}}
    json_ = _settings(monkeypatch, "json")
    logging_ = json_["LOGGING"]
    assert logging_["handlers"]["console"]["formatter"] == "json"
    assert logging_["formatters"]["json"] == {"()": "project.logging.JsonFormatter"}
    assert logging_["filters"]["role"] == {"()": "project.logging.RoleFilter", "role": "web"}
    assert logging_["loggers"]["django.channels.server"] == {"level": "WARNING"}


def test_settings_refuse_an_unknown_log_format(monkeypatch):
    with pytest.raises(ImproperlyConfigured, match="LOG_FORMAT"):
        _settings(monkeypatch, "yaml")


# --- A real Django process: what it writes on stderr -------------------------------

SCRIPT = """
import logging, warnings
import django
django.setup()
logging.getLogger("meterline.test").info("hello %s", "world", extra={"meter": "mtr_9"})
logging.getLogger("django.request").warning("Not Found: /nope")
warnings.warn("a library warns")
raise RuntimeError("crash\\nwith two lines")
"""


def _run_django(log_format: str | None, **variables: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("LOG_FORMAT", "METERLINE_ROLE")}
    if log_format is not None:
        env["LOG_FORMAT"] = log_format
    env |= variables
    return subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_json_process_writes_only_json_lines():
    # DEBUG on: Django's own console handler would print django.* records as text.
    result = _run_django("json", DEBUG="1")
    assert result.returncode == 1
    assert result.stdout == ""
    entries = [json.loads(line) for line in result.stderr.splitlines()]
    assert [(e["level"], e["logger"]) for e in entries] == [
        ("INFO", "meterline.test"),
        ("WARNING", "django.request"),
        ("WARNING", "py.warnings"),
        ("CRITICAL", "meterline"),
    ]
    assert all(e["role"] == "manage" for e in entries)
    assert entries[0]["meter"] == "mtr_9"
    assert "a library warns" in entries[2]["message"]
    assert entries[3]["message"] == "uncaught exception: RuntimeError: crash\nwith two lines"
    assert "RuntimeError: crash\nwith two lines" in entries[3]["exc_info"]


def test_text_is_the_default_and_unchanged():
    result = _run_django(None)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert TEXT_LINE.match(lines[0]), lines[0]
    assert lines[1].endswith(" WARNING django.request Not Found: /nope")
    # Warnings and tracebacks print as Python prints them, as before LOG_FORMAT.
    assert re.match(r"^<string>:\d+: UserWarning: a library warns$", lines[2]), lines[2]
    assert "Traceback (most recent call last):" in lines
    assert lines[-2:] == ["RuntimeError: crash", "with two lines"]
    assert not any("uncaught exception" in line or line.startswith("{") for line in lines)


def test_bad_log_format_fails_fast():
    result = _run_django("xml")
    assert result.returncode == 1
    assert "ImproperlyConfigured: LOG_FORMAT must be one of text, json, got 'xml'." in result.stderr
