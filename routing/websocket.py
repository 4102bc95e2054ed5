"""WebSocket routes: devices, dashboards and EV charge points (OCPP 1.6-J)."""

from django.urls import path, re_path

from metering.consumers import DashboardConsumer, DeviceConsumer
from metering.consumers.ocpp import ChargePointConsumer

# Devices authenticate with their token alone: project/asgi.py serves them before the
# session and user middleware that the rest of these routes go through.
device_urlpatterns = [path("ws/meters/", DeviceConsumer.as_asgi())]

websocket_urlpatterns = [
    *device_urlpatterns,
    path("ws/accounts/<str:account_id>/", DashboardConsumer.as_asgi()),
    # A charge point is configured with a central system URL and appends its own id.
    re_path(r"^ocpp/(?P<charge_point_id>[^/]+)/?$", ChargePointConsumer.as_asgi()),
]
