"""HTTP ingest for devices that cannot hold a WebSocket: one request, one rated frame.

The frame is rated inline, in this request, by the same service the workers
call, so the answer comes after the commit exactly like a WebSocket ack.
"""

import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from metering.api.auth import DeviceTokenAuthentication, MeterActive
from metering.api.serializers import AckOut, RefusalOut
from metering.parsing import batch_items, decode_json, parse_readings
from metering.rating import readings_rate
from metering.selectors import MeterIdentity
from project.metrics import BUSY_ANSWERS, READINGS_BUSY, READINGS_REFUSED
from protocol import BUSY_RETRY_MS, ReadingError

logger = logging.getLogger(__name__)

BATCH = inline_serializer(
    "ReadingBatch",
    {
        "readings": serializers.ListField(
            child=serializers.DictField(), help_text="Readings as in the WebSocket protocol."
        )
    },
)
DOCUMENTED = extend_schema(
    operation_id="readings_ingest",
    summary="Send a batch of readings (devices without a WebSocket)",
    description=(
        "The body is a batch frame of the device protocol. It is rated before the "
        "answer, which is the WebSocket ack: ids recorded, duplicates already "
        "recorded, and errors for readings that were refused."
    ),
    tags=["devices"],
    request=BATCH,
    parameters=[
        OpenApiParameter(
            "Retry-After",
            OpenApiTypes.INT,
            OpenApiParameter.HEADER,
            required=True,
            response=[503],
            description="Seconds to wait before resending.",
        ),
        OpenApiParameter(
            "WWW-Authenticate",
            OpenApiTypes.STR,
            OpenApiParameter.HEADER,
            required=True,
            response=[401],
            description="Bearer",
        ),
    ],
    responses={
        200: OpenApiResponse(AckOut, description="Rated: the ack."),
        400: OpenApiResponse(AckOut, description="The body is not a batch frame."),
        401: OpenApiResponse(RefusalOut, description="Missing or wrong device token."),
        403: OpenApiResponse(RefusalOut, description="The meter is disabled."),
        413: OpenApiResponse(AckOut, description="The body is too large."),
        503: OpenApiResponse(
            RefusalOut, description="Busy: nothing was recorded; resend after Retry-After."
        ),
    },
)


def _answer(
    status: int,
    *,
    ids: Iterable[str] = (),
    duplicates: Iterable[str] = (),
    errors: Iterable[ReadingError] = (),
) -> Response:
    ack = {"ids": list(ids), "duplicates": list(duplicates), "errors": list(errors)}
    return Response(AckOut(ack).data, status=status)


def _refusal(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Refusals keep the shape devices have always had, `{"detail"}` with no code (the
    operator API's handler adds one); anything else is a 500, as before."""
    response = drf_exception_handler(exc, context)
    if response is not None:
        response.data = RefusalOut({"detail": str(response.data["detail"])}).data
    return response


def _frame_items(body: bytes) -> list[Any]:
    """The same checks as a WebSocket batch frame: the body is the frame."""
    frame = decode_json(body, max_bytes=settings.METERLINE_MAX_FRAME_BYTES)
    if not isinstance(frame, dict):
        raise ReadingError(None, "invalid_message", 'the body must be {"readings": [...]}')
    return batch_items(frame.get("readings"), max_batch=settings.METERLINE_MAX_BATCH)


def _busy(meter: MeterIdentity, readings: int) -> Response:
    """503 when the database failed us: nothing was recorded, the device resends."""
    READINGS_BUSY.inc(readings)
    BUSY_ANSWERS.inc()
    logger.exception(
        "HTTP ingest for meter %s failed; answering 503",
        meter.id,
        extra={"meter": meter.id, "account": meter.account_id},
    )
    retry = max(1, BUSY_RETRY_MS // 1000)
    body = RefusalOut({"detail": "busy: nothing was recorded, resend later"}).data
    return Response(body, status=503, headers={"Retry-After": str(retry)})


class DeviceJSONRenderer(JSONRenderer):
    # Byte for byte the answers devices have always had (json.dumps' spacing, ASCII
    # escapes): small firmware parsers may be less forgiving than the JSON standard.
    compact = False
    ensure_ascii = True


class DeviceNegotiation(BaseContentNegotiation):
    """JSON whatever the device says it Accepts, as before: never a 406 to a device."""

    def select_parser(self, request: Request, parsers: list[Any]) -> Any:
        return parsers[0]

    def select_renderer(self, request: Request, renderers: list[Any], format_suffix=None):
        return renderers[0], renderers[0].media_type


class ReadingsIngestApi(APIView):
    authentication_classes = [DeviceTokenAuthentication]
    renderer_classes = [DeviceJSONRenderer]
    content_negotiation_class = DeviceNegotiation
    permission_classes = [IsAuthenticated, MeterActive]
    http_method_names = ["post"]

    def get_exception_handler(self):
        return _refusal

    @DOCUMENTED
    def post(self, request: Request, meter_id: str) -> Response:
        meter: MeterIdentity = request.auth
        try:
            items = _frame_items(request.body)
        except ReadingError as error:
            READINGS_REFUSED.inc()  # the whole body, in one error
            return _answer(413 if error.code == "too_large" else 400, errors=[error])
        frame = parse_readings(
            items,
            kind=meter.kind,
            now=timezone.now(),
            max_future=timedelta(seconds=settings.METERLINE_MAX_FUTURE_SECONDS),
        )
        if frame.errors:
            READINGS_REFUSED.inc(len(frame.errors))
        if not frame.readings:
            return _answer(200, errors=frame.errors)
        try:
            result = readings_rate(meter_id=meter.id, readings=frame.readings)
        except DatabaseError:
            return _busy(meter, len(frame.readings))
        return _answer(
            200,
            ids=result.ids,
            duplicates=result.duplicates,
            errors=[*frame.errors, *result.errors],
        )
