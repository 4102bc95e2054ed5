"""The Celery app: beat's schedule closes billing periods, sweeps the outbox and the webhooks."""

import contextlib
import logging
import os
import sys

from celery import Celery, signals

from project.logging import configure, json_line, log_format, process_role

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

app = Celery("project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def use_django_logging(loglevel=None, **kwargs) -> None:
    """Celery's setup_logging under LOG_FORMAT=json: Django's LOGGING, celery's -l level.

    With a receiver connected, Celery leaves logging alone: no handler of its
    own on the root logger (worker_hijack_root_logger), no stdout redirected
    into text records. Its banners are not logging: run it with `celery -q`.
    """
    from celery.apps import worker
    from django.conf import settings

    configure(settings.LOGGING)
    if loglevel:
        logging.getLogger().setLevel(loglevel)
    worker.safe_say = say_as_json


def say_as_json(msg: str, f=sys.__stderr__) -> None:
    """celery.apps.worker.safe_say ("worker: Warm shutdown", said from a signal
    handler) as a JSON line, written the way safe_say writes: one os.write."""
    from celery.apps import worker
    from django.conf import settings

    role = getattr(settings, "METERLINE_ROLE", None) or process_role()
    line = json_line("celery.apps.worker", logging.INFO, msg.strip(), role=role)
    with contextlib.suppress(OSError, AttributeError, ValueError):
        worker._original_os_write(f.fileno(), f"{line}\n".encode())


if log_format() == "json":
    # Without LOG_FORMAT=json, Celery logs as it always has.
    signals.setup_logging.connect(use_django_logging)
