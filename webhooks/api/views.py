"""Views of the webhook endpoints API: parse, call a service or selector, answer.

Each answer is rendered by the output serializer its `extend_schema` names.
"""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.api.errors import ERRORS, NOT_FOUND
from webhooks.api.serializers import (
    WebhookAttemptListInput,
    WebhookAttemptPageOut,
    WebhookEndpointCreatedOut,
    WebhookEndpointCreateInput,
    WebhookEndpointListOut,
    WebhookEndpointOut,
    WebhookEndpointUpdateInput,
    WebhookSecretOut,
)
from webhooks.models import WebhookEndpoint
from webhooks.selectors import webhook_attempt_list, webhook_endpoint_list
from webhooks.services import (
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_update,
    webhook_secret_rotate,
)

TAGS = ["webhooks"]


class WebhookEndpointListApi(APIView):
    @extend_schema(
        operation_id="webhook_endpoint_create",
        tags=TAGS,
        description=(
            "A new endpoint; it receives the events of every account of the types it names, "
            "from now on. The answer holds its signing secret, shown this once."
        ),
        request=WebhookEndpointCreateInput,
        responses={201: WebhookEndpointCreatedOut, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        data = WebhookEndpointCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint, secret = webhook_endpoint_create(**data.validated_data)
        created = WebhookEndpointCreatedOut(endpoint, context={"secret": secret})
        return Response(created.data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="webhook_endpoint_list",
        tags=TAGS,
        responses={200: WebhookEndpointListOut, 401: ERRORS[401]},
    )
    def get(self, request: Request) -> Response:
        return Response(WebhookEndpointListOut({"results": webhook_endpoint_list()}).data)


class WebhookEndpointDetailApi(APIView):
    @extend_schema(
        operation_id="webhook_endpoint_get",
        tags=TAGS,
        responses={200: WebhookEndpointOut, **NOT_FOUND},
    )
    def get(self, request: Request, endpoint_id: str) -> Response:
        return Response(WebhookEndpointOut(get_object_or_404(WebhookEndpoint, pk=endpoint_id)).data)

    @extend_schema(
        operation_id="webhook_endpoint_update",
        tags=TAGS,
        description=(
            'Change the URL or the events, or disable (`{"active": false}`) and enable it. '
            "A disabled endpoint is sent nothing and given no deliveries for new events."
        ),
        request=WebhookEndpointUpdateInput,
        responses={200: WebhookEndpointOut, **ERRORS, 404: NOT_FOUND[404]},
    )
    def patch(self, request: Request, endpoint_id: str) -> Response:
        endpoint = get_object_or_404(WebhookEndpoint, pk=endpoint_id)
        data = WebhookEndpointUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        endpoint = webhook_endpoint_update(endpoint=endpoint, **data.validated_data)
        return Response(WebhookEndpointOut(endpoint).data)

    @extend_schema(
        operation_id="webhook_endpoint_delete",
        tags=TAGS,
        description="The endpoint goes, with its pending deliveries and its attempts.",
        responses={204: None, **NOT_FOUND},
    )
    def delete(self, request: Request, endpoint_id: str) -> Response:
        webhook_endpoint_delete(endpoint=get_object_or_404(WebhookEndpoint, pk=endpoint_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookSecretRotateApi(APIView):
    @extend_schema(
        operation_id="webhook_endpoint_rotate_secret",
        tags=TAGS,
        description=(
            "A new signing secret, shown this once. For 24 hours requests carry a signature "
            "by each, the new and the one it replaces, so receivers can switch without a gap."
        ),
        request=None,
        responses={200: WebhookSecretOut, **NOT_FOUND},
    )
    def post(self, request: Request, endpoint_id: str) -> Response:
        endpoint = get_object_or_404(WebhookEndpoint, pk=endpoint_id)
        endpoint, secret = webhook_secret_rotate(endpoint=endpoint)
        body = {
            "id": endpoint.id,
            "secret": secret,
            "previous_secret_expires_at": endpoint.previous_secret_expires_at,
        }
        return Response(WebhookSecretOut(body).data)


class WebhookAttemptListApi(APIView):
    """Every attempt at delivering to the endpoint, newest first, a page at a time."""

    @extend_schema(
        operation_id="webhook_endpoint_deliveries",
        tags=TAGS,
        parameters=[WebhookAttemptListInput],
        responses={200: WebhookAttemptPageOut, **ERRORS, 404: NOT_FOUND[404]},
    )
    def get(self, request: Request, endpoint_id: str) -> Response:
        endpoint = get_object_or_404(WebhookEndpoint, pk=endpoint_id)
        query = WebhookAttemptListInput(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        limit = params["limit"]
        attempts = list(
            webhook_attempt_list(
                endpoint=endpoint, event_id=params.get("event"), before_id=params.get("before")
            )[: limit + 1]
        )
        next_url = None
        if len(attempts) > limit:
            attempts = attempts[:limit]
            following = request.query_params.copy()
            following["before"] = str(attempts[-1].id)
            next_url = request.build_absolute_uri(f"{request.path}?{following.urlencode()}")
        return Response(WebhookAttemptPageOut({"results": attempts, "next": next_url}).data)
