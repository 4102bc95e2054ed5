"""HTTP routes: signed-in pages, the operator API and its docs, device ingest, health,
metrics, admin."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny

from project.health import healthz
from project.metrics_view import metrics

# The schema and the docs page open in a browser without a key; the API calls
# made from the page send one ("Authorize").
public = {"authentication_classes": [], "permission_classes": [AllowAny]}

urlpatterns = [
    path("api/v1/", include("billing.api.urls")),
    path("api/v1/", include("metering.api.urls")),
    path("api/v1/", include("webhooks.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(**public), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema", **public), name="docs"),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("", include("web.urls")),
]
