"""HTTP routes: the operator API, device HTTP ingest, health and admin."""

from django.contrib import admin
from django.urls import include, path

from project.health import healthz

urlpatterns = [
    path("api/v1/", include("billing.api.urls")),
    path("api/v1/", include("metering.api.urls")),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
]
