"""The credit-control endpoints of the operator API (CONTRACT.md section 6): credits, the
balance, alerts. Shapes and views together: they serve this one part of the contract.
"""

from decimal import Decimal

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.api.errors import ERRORS, NOT_FOUND
from billing.api.fields import AmountField, DecimalOutField, DecimalStringField, TimestampField
from billing.api.serializers import money_field
from billing.credit import KINDS
from billing.credit_services import alert_create, credit_add
from billing.models import QUANTITY, Account, Alert

# --- shapes ---------------------------------------------------------------------------


class CreditInput(serializers.Serializer):
    amount = money_field(min_value=Decimal(0), min_exclusive=True)
    description = serializers.CharField(max_length=200, required=False, default="")
    idempotency_key = serializers.CharField(max_length=200)


class CreditOut(serializers.Serializer):
    id = serializers.CharField()
    amount = AmountField()
    description = serializers.CharField()
    balance_after = AmountField()
    created_at = TimestampField()


class LedgerAmountField(AmountField):
    pattern = r"^(0|-?[0-9]+\.[0-9]{6})$"
    description = 'money to exactly 6 places, "0" on an account never credited'


class BalanceOut(serializers.Serializer):
    currency = serializers.CharField()
    credited = LedgerAmountField()
    consumed = LedgerAmountField()
    balance = LedgerAmountField()
    cutoff_at = AmountField(allow_null=True)
    cut_off = serializers.BooleanField()

    def to_representation(self, instance: Account) -> dict:
        out = super().to_representation(instance)
        if instance.credit_since is None:  # postpaid: no balance (CONTRACT.md section 6)
            out |= {"credited": "0", "consumed": "0", "balance": "0"}
        return out


class AlertInput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=KINDS)
    threshold = DecimalStringField(
        max_digits=QUANTITY["max_digits"],
        max_places=QUANTITY["decimal_places"],
        min_value=Decimal(-(10**15)),
    )
    meter = serializers.CharField(allow_null=True, required=False, default=None)


class AlertOut(serializers.Serializer):
    id = serializers.CharField()
    account = serializers.CharField(source="account_id")
    kind = serializers.CharField()
    threshold = DecimalOutField()
    meter = serializers.CharField(source="meter_id", allow_null=True)
    created_at = TimestampField()
    last_fired_at = TimestampField(allow_null=True)


# --- views ----------------------------------------------------------------------------


class CreditCreateApi(APIView):
    @extend_schema(
        operation_id="credit_create",
        tags=["credit control"],
        request=CreditInput,
        responses={201: CreditOut, 200: CreditOut, **ERRORS, 404: NOT_FOUND[404]},
        description="Credit the account once per idempotency key: the same key again "
        "returns the first entry with 200 and credits nothing.",
    )
    def post(self, request: Request, account_id: str) -> Response:
        account = get_object_or_404(Account, pk=account_id)
        data = CreditInput(data=request.data)
        data.is_valid(raise_exception=True)
        outcome = credit_add(account_id=account.id, **data.validated_data)
        code = status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK
        return Response(CreditOut(outcome.credit).data, status=code)


class BalanceApi(APIView):
    @extend_schema(
        operation_id="account_balance",
        tags=["credit control"],
        responses={200: BalanceOut, **NOT_FOUND},
    )
    def get(self, request: Request, account_id: str) -> Response:
        account = get_object_or_404(Account, pk=account_id)
        return Response(BalanceOut(account).data)


class AlertListCreateApi(APIView):
    @extend_schema(
        operation_id="alert_list",
        tags=["credit control"],
        responses={200: AlertOut(many=True), **NOT_FOUND},
    )
    def get(self, request: Request, account_id: str) -> Response:
        account = get_object_or_404(Account, pk=account_id)
        return Response(AlertOut(Alert.objects.filter(account=account), many=True).data)

    @extend_schema(
        operation_id="alert_create",
        tags=["credit control"],
        request=AlertInput,
        responses={201: AlertOut, **ERRORS, 404: NOT_FOUND[404]},
    )
    def post(self, request: Request, account_id: str) -> Response:
        account = get_object_or_404(Account, pk=account_id)
        data = AlertInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        alert = alert_create(
            account=account,
            kind=fields["kind"],
            threshold=fields["threshold"],
            meter_id=fields["meter"],
        )
        return Response(AlertOut(alert).data, status=status.HTTP_201_CREATED)
