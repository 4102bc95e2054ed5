"""Routes of the meter endpoints, mounted under /api/v1/."""

from django.urls import path

from metering.api import views
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
]
