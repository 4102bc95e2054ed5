"""Routes of the webhook endpoints API, mounted under /api/v1/."""

from django.urls import path

from webhooks.api import views

urlpatterns = [
    path(
        "webhook-endpoints/", views.WebhookEndpointListApi.as_view(), name="webhook-endpoint-list"
    ),
    path(
        "webhook-endpoints/<str:endpoint_id>/",
        views.WebhookEndpointDetailApi.as_view(),
        name="webhook-endpoint-detail",
    ),
    path(
        "webhook-endpoints/<str:endpoint_id>/rotate-secret/",
        views.WebhookSecretRotateApi.as_view(),
        name="webhook-endpoint-rotate-secret",
    ),
    path(
        "webhook-endpoints/<str:endpoint_id>/deliveries/",
        views.WebhookAttemptListApi.as_view(),
        name="webhook-endpoint-deliveries",
    ),
]
