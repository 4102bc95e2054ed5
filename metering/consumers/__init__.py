"""WebSocket consumers: devices stream readings in (devices.py), dashboards watch charges come
out (dashboards.py).

They parse and authenticate only. Rating happens in the `rating` workers,
to which frames travel in batches (metering/batching.py); a device hears
`ack` once the worker has committed the frame's charges.
"""

from metering.consumers.dashboards import DashboardConsumer
from metering.consumers.devices import DeviceConsumer

__all__ = ["DashboardConsumer", "DeviceConsumer"]
