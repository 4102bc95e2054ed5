"""HTTP routes: the operator API, device HTTP ingest, health and admin."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
]
