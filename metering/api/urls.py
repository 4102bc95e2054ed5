"""Routes of the meter endpoints and of charge points' id tags and sessions, mounted under
/api/v1/."""

from django.urls import path

from metering.api import charging, views
from metering.ingest import ReadingsIngestApi

urlpatterns = [
    path("meters/", views.MeterCreateApi.as_view(), name="meter-create"),
    path("meters/<str:meter_id>/", views.MeterDetailApi.as_view(), name="meter-detail"),
    path(
        "meters/<str:meter_id>/rotate-token/",
        views.MeterTokenRotateApi.as_view(),
        name="meter-rotate-token",
    ),
    # Device HTTP ingest: device token auth, rated inline (metering/ingest.py).
    path("meters/<str:meter_id>/readings/", ReadingsIngestApi.as_view(), name="meter-readings"),
    # EV charge points (OCPP 1.6-J): id tags and charging sessions.
    path("accounts/<str:account_id>/id-tags/", charging.IdTagsApi.as_view(), name="id-tags"),
    path("id-tags/<str:tag_id>/", charging.IdTagDetailApi.as_view(), name="id-tag-detail"),
    path(
        "accounts/<str:account_id>/charging-sessions/",
        charging.ChargingSessionsApi.as_view(),
        name="charging-sessions",
    ),
    path(
        "charging-sessions/<str:session_id>/",
        charging.ChargingSessionDetailApi.as_view(),
        name="charging-session-detail",
    ),
    path(
        "charging-sessions/<str:session_id>/stop/",
        charging.ChargingSessionStopApi.as_view(),
        name="charging-session-stop",
    ),
]
