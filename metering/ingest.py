"""HTTP ingest for devices that cannot hold a WebSocket: one request, one rated frame.

The frame is rated inline, in this request, by the same service the workers
call, so the answer comes after the commit exactly like a WebSocket ack.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from metering.parsing import batch_items, decode_json, parse_readings
from metering.rating import readings_rate
from metering.selectors import meter_for_token
from project.metrics import BUSY_ANSWERS, READINGS_BUSY, READINGS_REFUSED
from protocol import BUSY_RETRY_MS, ReadingError

logger = logging.getLogger(__name__)


def _answer(status: int, *, ids=(), duplicates=(), errors=(), headers=None) -> JsonResponse:
    body = {
        "ids": list(ids),
        "duplicates": list(duplicates),
        "errors": [{"id": e.id, "code": e.code, "detail": e.detail} for e in errors],
    }
    return JsonResponse(body, status=status, headers=headers)


@csrf_exempt
@require_POST
def readings_ingest(request: HttpRequest, meter_id: str) -> JsonResponse:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    meter = meter_for_token(token=token.strip()) if scheme.lower() == "bearer" and token else None
    if meter is None or meter.id != meter_id:
        return JsonResponse(
            {"detail": "missing or wrong device token"},
            status=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not meter.active:
        return JsonResponse({"detail": "this meter is disabled"}, status=403)
    # The same checks as a WebSocket batch frame: the body is the frame.
    try:
        body = decode_json(request.body, max_bytes=settings.METERLINE_MAX_FRAME_BYTES)
        if not isinstance(body, dict):
            raise ReadingError(None, "invalid_message", 'the body must be {"readings": [...]}')
        items = batch_items(body.get("readings"), max_batch=settings.METERLINE_MAX_BATCH)
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
        READINGS_BUSY.inc(len(frame.readings))
        BUSY_ANSWERS.inc()
        logger.exception(
            "HTTP ingest for meter %s failed; answering 503",
            meter.id,
            extra={"meter": meter.id, "account": meter.account_id},
        )
        retry = max(1, BUSY_RETRY_MS // 1000)
        return JsonResponse(
            {"detail": "busy: nothing was recorded, resend later"},
            status=503,
            headers={"Retry-After": str(retry)},
        )
    return _answer(
        200, ids=result.ids, duplicates=result.duplicates, errors=[*frame.errors, *result.errors]
    )
