"""Celery tasks of metering: beat prunes the dashboards' event log (metering/event_log.py)."""

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from metering.event_log import event_log_prune


@shared_task(name="metering.prune_event_log", ignore_result=True)
def prune_event_log() -> int:
    """Delete the dashboard events older than METERLINE_DASHBOARD_EVENTS_KEEP_SECONDS."""
    keep = timedelta(seconds=settings.METERLINE_DASHBOARD_EVENTS_KEEP_SECONDS)
    return event_log_prune(before=timezone.now() - keep)
