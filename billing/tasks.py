"""Celery tasks of billing: the beat schedule closes ended periods into invoices and tells
the outbox events a dead process left untold."""

from celery import shared_task

from billing.credit_events import outbox_sweep
from billing.invoicing import periods_close_due


@shared_task(name="billing.close_due_periods", ignore_result=True)
def close_due_periods() -> int:
    """Close every account's ended periods; returns how many invoices were made."""
    return len(periods_close_due())


@shared_task(name="billing.outbox_sweep", ignore_result=True)
def sweep_outbox() -> int:
    """Tell the events committed but never told (a process died in between)."""
    return outbox_sweep()
