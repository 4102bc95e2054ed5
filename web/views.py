"""Pages for signed-in users: their accounts, an account's live dashboard, invoice CSVs.

The dashboard page renders the frame (names, invoices); the numbers come
from the dashboard WebSocket, which the page opens with the same session.
"""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from billing.api.invoices import invoice_csv_response
from billing.models import Account, Invoice
from billing.money import format_minor
from billing.periods import isoformat
from billing.selectors import account_list_for_user, account_user_allowed
from metering.ocpp.services import charging_sessions_active_rendered

RECENT_INVOICES = 6


def _allowed_account(request: HttpRequest, account_id: str) -> Account:
    """The account, 404 if there is none, 403 if this user may not see it."""
    account = get_object_or_404(Account, pk=account_id)
    if not account_user_allowed(user=request.user, account_id=account.id):
        raise PermissionDenied
    return account


@login_required
def account_list(request: HttpRequest) -> HttpResponse:
    accounts = account_list_for_user(user=request.user)
    return render(request, "web/account_list.html", {"accounts": accounts})


@login_required
def account_dashboard(request: HttpRequest, account_id: str) -> HttpResponse:
    account = _allowed_account(request, account_id)
    meters = [
        {
            "id": meter.id,
            "name": meter.name,
            "last_ts": isoformat(meter.last_ts) if meter.last_ts else None,
        }
        for meter in account.meters.order_by("created_at", "id")
    ]
    invoices = [
        {
            "id": invoice.id,
            "period_start": invoice.period_start,
            "period_end": invoice.period_end,
            "total": format_minor(invoice.total, invoice.currency),
            "currency": invoice.currency,
        }
        for invoice in account.invoices.order_by("-period_start")[:RECENT_INVOICES]
    ]
    context = {
        "account": account,
        "invoices": invoices,
        "page_data": {
            "account": account.id,
            "currency": account.currency,
            "timezone": account.timezone,
            "socket_path": f"/ws/accounts/{account.id}/",
            "meters": meters,
            # EV charge points: the sessions charging now (web/static/meterline/charging.js).
            "sessions": charging_sessions_active_rendered(account_id=account.id),
        },
    }
    return render(request, "web/dashboard.html", context)


@login_required
def invoice_csv(request: HttpRequest, account_id: str, invoice_id: str) -> HttpResponse:
    account = _allowed_account(request, account_id)
    invoice = get_object_or_404(
        Invoice.objects.prefetch_related("lines"), pk=invoice_id, account=account
    )
    return invoice_csv_response(invoice)
