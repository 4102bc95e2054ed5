"""Invoices in the operator API: list, detail, CSV of the lines, and closing a period now."""

import csv
import io
import re

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.api.errors import ERRORS, NOT_FOUND, ErrorOut
from billing.api.serializers import InvoiceLineOut, InvoiceListOut, InvoiceOut
from billing.invoicing import account_periods_close
from billing.models import Account, Invoice
from billing.periods import isoformat


class NothingToClose(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "nothing_to_close"
    default_detail = "the open period was closed at this very moment; nothing is left to close"


CONFLICT = OpenApiResponse(ErrorOut, description="The open period was closed meanwhile.")


class InvoiceListInput(serializers.Serializer):
    account = serializers.CharField(max_length=32)


# A spreadsheet runs a cell that begins with one of these as a formula (OWASP's "CSV
# injection"); tab and CR too, which some strip before looking.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# ...but a decimal number, negative amounts included, is data and must stay a number.
NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def csv_cell(value: str) -> str:
    """`value` as a CSV cell no spreadsheet runs: a leading `'` makes a formula text."""
    if value.startswith(FORMULA_STARTS) and not NUMBER.fullmatch(value):
        return f"'{value}"
    return value


def invoice_csv_response(invoice: Invoice) -> HttpResponse:
    """The invoice's lines as a CSV download (the API and the signed-in pages both serve it),
    every cell safe to open in a spreadsheet (`csv_cell`).

    Needs `lines` prefetched.
    """
    body = io.StringIO()
    writer = csv.writer(body)
    writer.writerow(
        [
            "invoice",
            "period_start",
            "period_end",
            "description",
            "kind",
            "meter",
            "quantity",
            "amount",
            "currency",
        ]
    )
    for line in InvoiceLineOut(invoice.lines.all(), many=True).data:
        cells = [
            invoice.id,
            isoformat(invoice.period_start),
            isoformat(invoice.period_end),
            line["description"],
            line["kind"],
            line["meter"] or "",
            line["quantity"],
            line["amount"],
            invoice.currency,
        ]
        writer.writerow([csv_cell(cell) for cell in cells])
    response = HttpResponse(body.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{invoice.id}.csv"'
    return response


class InvoiceListApi(APIView):
    @extend_schema(
        operation_id="invoice_list",
        tags=["invoices"],
        parameters=[InvoiceListInput],
        responses={200: InvoiceListOut, **ERRORS, 404: NOT_FOUND[404]},
    )
    def get(self, request: Request) -> Response:
        query = InvoiceListInput(data=request.query_params)
        query.is_valid(raise_exception=True)
        account = get_object_or_404(Account, pk=query.validated_data["account"])
        invoices = account.invoices.prefetch_related("lines").order_by("period_start")
        return Response(InvoiceListOut({"results": invoices}).data)


class InvoiceDetailApi(APIView):
    @extend_schema(
        operation_id="invoice_get",
        tags=["invoices"],
        responses={200: InvoiceOut, **NOT_FOUND},
    )
    def get(self, request: Request, invoice_id: str) -> Response:
        invoice = get_object_or_404(Invoice.objects.prefetch_related("lines"), pk=invoice_id)
        return Response(InvoiceOut(invoice).data)


class InvoiceCsvApi(APIView):
    """The invoice's lines as CSV, for spreadsheets and accounting imports."""

    @extend_schema(
        operation_id="invoice_csv",
        tags=["invoices"],
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="One row a line."),
            **NOT_FOUND,
        },
    )
    def get(self, request: Request, invoice_id: str) -> HttpResponse:
        invoice = get_object_or_404(Invoice.objects.prefetch_related("lines"), pk=invoice_id)
        return invoice_csv_response(invoice)


class ClosePeriodApi(APIView):
    """Close the account's open period now (and any ended period still open before it)."""

    @extend_schema(
        operation_id="account_close_period",
        tags=["invoices"],
        request=None,
        responses={201: InvoiceOut, **NOT_FOUND, 409: CONFLICT},
    )
    def post(self, request: Request, account_id: str) -> Response:
        account = get_object_or_404(Account, pk=account_id)
        now = timezone.now()
        invoices = account_periods_close(account_id=account.id, until=now, close_open=True)
        if not invoices or invoices[-1].period_end != now:
            raise NothingToClose()
        invoice = Invoice.objects.prefetch_related("lines").get(pk=invoices[-1].pk)
        return Response(InvoiceOut(invoice).data, status=status.HTTP_201_CREATED)
