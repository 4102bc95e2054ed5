"""Celery tasks of billing: the beat schedule closes ended periods into invoices."""

from celery import shared_task

from billing.invoicing import periods_close_due


@shared_task(name="billing.close_due_periods", ignore_result=True)
def close_due_periods() -> int:
    """Close every account's ended periods; returns how many invoices were made."""
    return len(periods_close_due())
