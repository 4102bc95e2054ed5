"""Celery tasks of the webhooks: the wake after a commit, and the beat sweeper.

Both only decide what to deliver and hand it to the delivery threads of the worker
process (webhooks/dispatch.py), so they return at once, whatever the receivers do; and
both make sure the process sweeps on its own too.
"""

from celery import shared_task, signals

from webhooks.dispatch import deliveries_pump, dispatch_stop, pump_start


@shared_task(name="webhooks.fan_out", ignore_result=True)
def fan_out() -> int:
    """Sent after each commit that wrote events (billing/outbox.py's webhooks_wake)."""
    pump_start()
    return deliveries_pump(sweep=False)


@shared_task(name="webhooks.sweep", ignore_result=True)
def sweep() -> int:
    """Every METERLINE_WEBHOOK_SWEEP_SECONDS (beat): retries that fell due, and anything a
    lost wake or a dead process left; and it starts the worker's own sweep, if it has none."""
    pump_start()
    return deliveries_pump(sweep=True)


# The prefork pool's child runs the tasks (and the threads); -P solo runs them in the worker.
signals.worker_process_shutdown.connect(dispatch_stop, weak=False)
signals.worker_shutdown.connect(dispatch_stop, weak=False)
