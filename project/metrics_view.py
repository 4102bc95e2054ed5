"""GET /metrics: the Prometheus text page of every process of the host (project/metrics.py).

Operator only, as the REST API: `Authorization: Bearer <operator API key>`
through billing/auth.py, never a key in the query string (it would end up in
access logs and scrape configs' URLs).
"""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from billing.auth import OperatorKeyAuthentication
from project.metrics import exposition


def _operator_authenticated(request: HttpRequest) -> bool:
    try:
        return OperatorKeyAuthentication().authenticate(Request(request)) is not None
    except AuthenticationFailed:
        return False


@csrf_exempt  # a scraper holds a key, not a session; anything but GET is 405
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not _operator_authenticated(request):
        return JsonResponse(
            {"code": "not_authenticated", "detail": "An operator API key is required."},
            status=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    body, content_type = exposition()
    return HttpResponse(body, content_type=content_type)
