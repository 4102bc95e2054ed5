"""LOG_FORMAT=json: every process logs one JSON object per line, with the same fields.

`time` (UTC, ISO 8601, milliseconds, "Z"), `level`, `logger`, `message`,
`role` (web, worker, celery, beat or manage), `pid`, then `meter`, `account`
and `batch` when a record carries them (`extra={...}`), the access-log fields
of daphne's requests, and `exc_info` (the traceback, escaped into the same
line) when there is an exception.

A small formatter of our own rather than python-json-logger's JsonFormatter:
that one copies every attribute a library leaves on a record (Celery puts a
task's arguments on its "received" line, which may hold secrets) and would
need overriding for the time format anyway; ours writes exactly the fields
above, and json.dumps escapes any newline, so a record is always one line.
"""

import json
import logging
import logging.config
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from project.env import env_choice

LOG_FORMATS = ("text", "json")
# Attributes copied from a record when present: the extras Meterline code
# passes, and the fields of daphne's access log (project/redaction.py).
EXTRA_FIELDS = (
    "meter",
    "account",
    "batch",
    "method",
    "path",
    "status",
    "size",
    "client",
    "duration",
)
# daphne's access log (daphne.access.AccessLogGenerator): what each action is
# called on its text line, where it is the method's place.
ACCESS_VERBS = {
    ("websocket", "connecting"): "WSCONNECTING",
    ("websocket", "rejected"): "WSREJECT",
    ("websocket", "connected"): "WSCONNECT",
    ("websocket", "disconnected"): "WSDISCONNECT",
}


def log_format() -> str:
    """LOG_FORMAT: "text" (the default) or "json"; anything else is refused at start."""
    return env_choice("LOG_FORMAT", LOG_FORMATS, default="text")


def process_role(argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ) -> str:
    """What this process is, from its command line (sys.argv), unless METERLINE_ROLE says."""
    argv = sys.argv if argv is None else argv
    if environ.get("METERLINE_ROLE"):
        return environ["METERLINE_ROLE"]
    program = Path(argv[0]).name if argv else ""
    if program == "__main__.py":  # python -m daphne / python -m celery
        program = Path(argv[0]).parent.name
    if program == "daphne":
        return "web"
    if program == "celery":
        # The subcommand, after any global options (-A project -q ...).
        command = next((arg for arg in argv[1:] if arg in ("worker", "beat")), "")
        return "beat" if command == "beat" else "celery"
    command = argv[1] if len(argv) > 1 else ""
    if command == "runworker":
        return "worker"
    if command == "runserver":  # daphne's runserver: a web process too
        return "web"
    return "manage"


class RoleFilter(logging.Filter):
    """Puts the process role on every record a handler writes."""

    def __init__(self, role: str):
        super().__init__()
        self.role = role

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "role"):
            record.role = self.role
        return True


class JsonFormatter(logging.Formatter):
    """One record as one line of JSON; the role is RoleFilter's, else worked out here."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "role": getattr(record, "role", None) or process_role(),
            "pid": record.process,
        }
        for name in EXTRA_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure(config: dict) -> None:
    """Django's LOGGING_CONFIG: dictConfig, and in JSON mode warnings and crashes as records too.

    Only in JSON mode, so the text format stays what it was: a warning or an
    uncaught exception would otherwise print its own lines on stderr.
    """
    from django.conf import settings

    logging.config.dictConfig(config)
    if getattr(settings, "LOG_FORMAT", "text") != "json":
        return
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(kind, value, traceback) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, traceback)
        return
    logging.getLogger("meterline").critical(
        "uncaught exception: %s: %s", kind.__name__, value, exc_info=(kind, value, traceback)
    )


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    logging.getLogger("meterline").critical(
        "uncaught exception in thread %s: %s: %s",
        args.thread.name if args.thread else "?",
        args.exc_type.__name__,
        args.exc_value,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


def json_line(logger: str, level: int, message: str, *, role: str, **fields) -> str:
    """A JSON log line for text a library writes past logging (daphne, Celery)."""
    record = logging.makeLogRecord(
        {
            "name": logger,
            "levelno": level,
            "levelname": logging.getLevelName(level),
            "msg": message,
            "role": role,
            **fields,
        }
    )
    return JsonFormatter().format(record)


def access_log_json(protocol: str, action: str, details: Mapping, *, role: str) -> str | None:
    """One of daphne's access-log entries as a JSON line (its path already redacted)."""
    if (protocol, action) == ("http", "complete"):
        method = details.get("method")
    elif (protocol, action) in ACCESS_VERBS:
        method = ACCESS_VERBS[protocol, action]
    else:
        return None
    status = details.get("status")
    message = f"{method} {details.get('path')}" + (f" {status}" if status is not None else "")
    return json_line(
        "daphne.access",
        logging.INFO,
        message,
        role=role,
        method=method,
        path=details.get("path"),
        status=status,
        size=details.get("size"),
        client=details.get("client"),
        duration=_seconds(details.get("time_taken")),
    )


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
