"""Keeping secrets out of logs, and daphne's access log in the process's log format.

Dashboards and some devices pass their key as `?token=`, and daphne's access
log writes each HTTP request's full path, query string included. This
redacts such values before daphne writes the line. Django's own request
logging prints the path without its query string.

daphne writes its access log straight to a stream (stdout unless
`--access-log FILE`; on by default, off with `-v 0`), not through logging;
with LOG_FORMAT=json each entry becomes a JSON object on that stream
(project/logging.py), with the same fields as every other line.
"""

import re

SECRET_PARAMETER = re.compile(r"([?&](?:token|key|api_key)=)[^&\s\"]*", re.IGNORECASE)


def redact(text: str) -> str:
    return SECRET_PARAMETER.sub(r"\1[redacted]", text)


def redact_daphne_access_log() -> None:
    """Make daphne's access log redact secrets, and write JSON under LOG_FORMAT=json.

    A no-op where daphne is not installed.
    """
    try:
        from daphne.access import AccessLogGenerator
    except ImportError:
        return
    if getattr(AccessLogGenerator, "_meterline_redacts", False):
        return
    log_entry = AccessLogGenerator.__call__

    def meterline_log_entry(self, protocol, action, details):
        from django.conf import settings

        from project.logging import access_log_json, process_role

        if "path" in details:
            details = {**details, "path": redact(str(details["path"]))}
        if getattr(settings, "LOG_FORMAT", "text") != "json":
            return log_entry(self, protocol, action, details)
        role = getattr(settings, "METERLINE_ROLE", None) or process_role()
        line = access_log_json(protocol, action, details, role=role)
        if line is not None:
            # One write per line, flushed: stdout is block-buffered in a pipe,
            # and a line split by a buffer flush would interleave with stderr.
            self.stream.write(line + "\n")
            self.stream.flush()
        return None

    AccessLogGenerator.__call__ = meterline_log_entry
    AccessLogGenerator._meterline_redacts = True
