"""Secrets in query strings never reach a log line."""

import io

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
