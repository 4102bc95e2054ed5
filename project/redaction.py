"""Keeping secrets out of logs.

Dashboards and some devices pass their key as `?token=`, and daphne's access
log writes each HTTP request's full path, query string included. This
redacts such values before daphne writes the line. Django's own request
logging prints the path without its query string.
"""

import re

SECRET_PARAMETER = re.compile(r"([?&](?:token|key|api_key)=)[^&\s\"]*", re.IGNORECASE)


def redact(text: str) -> str:
    return SECRET_PARAMETER.sub(r"\1[redacted]", text)


def redact_daphne_access_log() -> None:
    """Make daphne's access log redact secrets (a no-op where daphne is not installed)."""
    try:
        from daphne.access import AccessLogGenerator
    except ImportError:
        return
    if getattr(AccessLogGenerator, "_meterline_redacts", False):
        return
    write_entry = AccessLogGenerator.write_entry

    def redacted_write_entry(self, host, date, request, *args, **kwargs):
        return write_entry(self, host, date, redact(request), *args, **kwargs)

    AccessLogGenerator.write_entry = redacted_write_entry
    AccessLogGenerator._meterline_redacts = True
