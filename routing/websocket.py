"""WebSocket routes: devices and dashboards."""

from django.urls import path

from metering.consumers import DashboardConsumer, DeviceConsumer

websocket_urlpatterns = [
    path("ws/meters/", DeviceConsumer.as_asgi()),
    path("ws/accounts/<str:account_id>/", DashboardConsumer.as_asgi()),
]
