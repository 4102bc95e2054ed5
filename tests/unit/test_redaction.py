"""Secrets in query strings never reach a log line."""

import io
import json

from daphne.access import AccessLogGenerator

from project.redaction import redact, redact_daphne_access_log


def test_redact_query_secrets():
    line = "GET /ws/accounts/a1/?token=opk_secret&x=1 and /p?key=dbk_s2"
    assert redact(line) == "GET /ws/accounts/a1/?token=[redacted]&x=1 and /p?key=[redacted]"


def test_daphne_access_log_is_redacted():
    redact_daphne_access_log()
    stream = io.StringIO()
    details = {
        "client": "127.0.0.1:1",
        "method": "GET",
        "path": "/api/v1/accounts/a/?token=mtk_secret",
        "status": 401,
        "size": 10,
    }
    AccessLogGenerator(stream)("http", "complete", details)
    assert "mtk_secret" not in stream.getvalue()
    assert "token=[redacted]" in stream.getvalue()


def test_daphne_access_log_as_json(settings):
    """LOG_FORMAT=json: each access-log entry is one JSON object, redacted."""
    settings.LOG_FORMAT = "json"
    settings.METERLINE_ROLE = "web"
    redact_daphne_access_log()
    stream = io.StringIO()
    log = AccessLogGenerator(stream)
    log(
        "http",
        "complete",
        {
            "client": "127.0.0.1:1",
            "method": "GET",
            "path": "/healthz?token=mtk_secret&x=1",
            "status": 200,
            "size": 10,
            "time_taken": 0.0123456789,
        },
    )
    log("websocket", "connecting", {"client": "127.0.0.1:2", "path": "/ws/meters/?key=dbk_s"})
    log("websocket", "connected", {"client": "127.0.0.1:2", "path": "/ws/meters/"})
    output = stream.getvalue()
    assert "mtk_secret" not in output and "dbk_s" not in output
    http, connecting, connected = (json.loads(line) for line in output.splitlines())
    assert {k: http[k] for k in ("level", "logger", "role", "method", "path", "status")} == {
        "level": "INFO",
        "logger": "daphne.access",
        "role": "web",
        "method": "GET",
        "path": "/healthz?token=[redacted]&x=1",
        "status": 200,
    }
    assert (http["client"], http["size"], http["duration"]) == ("127.0.0.1:1", 10, 0.012346)
    assert http["message"] == "GET /healthz?token=[redacted]&x=1 200"
    assert (connecting["method"], connecting["path"]) == (
        "WSCONNECTING",
        "/ws/meters/?key=[redacted]",
    )
    assert connected["method"] == "WSCONNECT" and "status" not in connected
