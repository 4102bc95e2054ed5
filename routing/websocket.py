"""WebSocket routes: devices, dashboards and EV charge points (OCPP 1.6-J)."""

from django.urls import path, re_path

from metering.consumers import DashboardConsumer, DeviceConsumer
from metering.consumers.ocpp import ChargePointConsumer

websocket_urlpatterns = [
    path("ws/meters/", DeviceConsumer.as_asgi()),
    path("ws/accounts/<str:account_id>/", DashboardConsumer.as_asgi()),
    # A charge point is configured with a central system URL and appends its own id.
    re_path(r"^ocpp/(?P<charge_point_id>[^/]+)/?$", ChargePointConsumer.as_asgi()),
]
