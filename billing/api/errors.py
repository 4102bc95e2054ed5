"""One JSON error shape for the whole operator API, never a traceback.

Every error body has a `code` and a `detail`; a 400 for invalid input adds
`errors`, mapping each bad field's path (`tiers[1].up_to`) to its messages:

    {"code": "invalid", "detail": "...", "errors": {"tiers[1].up_to": ["..."]}}
"""

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

logger = logging.getLogger(__name__)


class ErrorOut(serializers.Serializer):
    # Renders every error body of the operator API (below) and documents it (ERRORS).
    code = serializers.CharField()
    detail = serializers.CharField()
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text='On a 400 only: messages by field path, e.g. "tiers[1].up_to".',
    )


# The error answers of the views, for their `extend_schema(responses=...)`.
ERRORS = {
    400: OpenApiResponse(ErrorOut, description="The body or query failed validation."),
    401: OpenApiResponse(ErrorOut, description="Missing or wrong operator API key."),
}
NOT_FOUND = {
    401: ERRORS[401],
    404: OpenApiResponse(ErrorOut, description="No such object."),
}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DjangoValidationError):
        # Services raise Django's ValidationError, which DRF alone would let through as a 500.
        exc = exceptions.ValidationError(_django_errors(exc))
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        if settings.DEBUG:
            return None  # Django's debug page, for a developer at their own machine.
        logger.exception("unhandled error in %s", context.get("view"), exc_info=exc)
        set_rollback()
        body = {"code": "server_error", "detail": "Internal server error."}
        return Response(ErrorOut(body).data, status=status.HTTP_500_INTERNAL_SERVER_ERROR)

    if isinstance(exc, exceptions.ValidationError):
        body = {
            "code": "invalid",
            "detail": "The request is invalid; see errors for each field.",
            "errors": flatten_errors(exc.detail),
        }
        response.data = ErrorOut(body).data
    elif isinstance(exc, exceptions.APIException):
        code = getattr(exc.detail, "code", None) or exc.default_code
        response.data = ErrorOut({"code": str(code), "detail": str(exc.detail)}).data
    return response


def flatten_errors(detail: Any, path: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as {"tiers[1].up_to": ["..."]}."""
    errors: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = api_settings.NON_FIELD_ERRORS_KEY if key == NON_FIELD_ERRORS else str(key)
            errors.update(flatten_errors(value, f"{path}.{name}" if path else name))
    elif isinstance(detail, list) and any(isinstance(item, dict | list) for item in detail):
        for index, item in enumerate(detail):
            if item:
                errors.update(flatten_errors(item, f"{path}[{index}]"))
    else:
        messages = detail if isinstance(detail, list) else [detail]
        errors.setdefault(path or api_settings.NON_FIELD_ERRORS_KEY, []).extend(
            str(message) for message in messages
        )
    return errors


def _django_errors(exc: DjangoValidationError) -> dict[str, list[str]] | list[str]:
    if hasattr(exc, "error_dict"):
        return exc.message_dict
    return exc.messages
