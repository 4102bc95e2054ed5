"""Baseline (b), what most Django teams build: an HTTP POST per reading into a Celery task.

    twistd -n --pidfile= web --listen tcp:8002 --wsgi scripts.baselines.wsgi.application
    DJANGO_SETTINGS_MODULE=scripts.baselines.settings celery -A project worker -Q baseline

POST /baseline/readings/ with the device token (Authorization: Bearer) and one reading
({"id", "ts", "quantity"}): the view finds the meter with the ORM, queues the task and
answers 202 at once; the task, in the Celery worker, saves and prices it (saving.py).
So a 202 means "queued", not "charged": http_load.py times both. A plain Django view
(no DRF) and Celery's defaults: the cheapest honest version of the pattern. Every other
route is Meterline's own, for the operator API.
"""

import json
from datetime import datetime
from decimal import Decimal, InvalidOperation

from celery import shared_task
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing.keys import secret_hash
from metering.models import Meter
from routing.http import urlpatterns as meterline_urlpatterns
from scripts.baselines.saving import baseline_reading_save

QUEUE = "baseline"


@shared_task(name="baselines.reading_save", queue=QUEUE)
def reading_save_task(meter_id: str, reading: dict) -> bool:
    return baseline_reading_save(
        meter_id=meter_id,
        reading_id=reading["id"],
        ts=datetime.fromisoformat(reading["ts"]),
        quantity=Decimal(reading["quantity"]),
    )


@csrf_exempt
@require_POST
def reading_post(request: HttpRequest) -> JsonResponse:
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    meter_id = (
        Meter.objects.filter(token_hash=secret_hash(token)).values_list("id", flat=True).first()
    )
    if meter_id is None:
        return JsonResponse({"detail": "unknown device token"}, status=401)
    try:
        reading = _checked(json.loads(request.body))
    except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
        return JsonResponse({"detail": str(exc)}, status=400)
    reading_save_task.delay(meter_id, reading)
    return JsonResponse({"id": reading["id"]}, status=202)


def _checked(reading: dict) -> dict:
    """The reading as the task takes it, once its timestamp and quantity parse."""
    datetime.fromisoformat(reading["ts"])
    Decimal(reading["quantity"])
    return {"id": str(reading["id"]), "ts": reading["ts"], "quantity": reading["quantity"]}


urlpatterns = [path("baseline/readings/", reading_post), *meterline_urlpatterns]
