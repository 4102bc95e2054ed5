"""Views of the billing half of the operator API: parse, call a service or selector, answer.

Each answer is rendered by the output serializer its `extend_schema` names.
"""

import re

from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.account_services import account_create, dashboard_key_create, dashboard_key_revoke
from billing.api.errors import ERRORS, NOT_FOUND
from billing.api.serializers import (
    TARIFF_EXAMPLE,
    AccountCreateInput,
    AccountOut,
    AccountUpdateInput,
    AccountUsageOut,
    ChargeListInput,
    ChargePageOut,
    DashboardKeyCreatedOut,
    DashboardKeyListOut,
    TariffCreateInput,
    TariffCreateRequest,
    TariffOut,
)
from billing.credit_services import account_cutoff_set
from billing.models import Account, DashboardKey, Tariff
from billing.selectors import account_usage, charge_list, dashboard_key_list
from billing.tariff_services import tariff_create


class AccountCreateApi(APIView):
    @extend_schema(
        operation_id="account_create",
        tags=["accounts"],
        request=AccountCreateInput,
        responses={201: AccountOut, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        data = AccountCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        account = account_create(**data.validated_data)
        return Response(AccountOut(account).data, status=status.HTTP_201_CREATED)


class AccountDetailApi(APIView):
    @extend_schema(
        operation_id="account_get",
        tags=["accounts"],
        responses={200: AccountOut, **NOT_FOUND},
    )
    def get(self, request: Request, account_id: str) -> Response:
        return Response(AccountOut(get_object_or_404(Account, pk=account_id)).data)

    @extend_schema(
        operation_id="account_update",
        tags=["accounts"],
        request=AccountUpdateInput,
        responses={200: AccountOut, **ERRORS, 404: NOT_FOUND[404]},
    )
    def patch(self, request: Request, account_id: str) -> Response:
        account = get_object_or_404(Account, pk=account_id)
        data = AccountUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        if "cutoff_at" in data.validated_data:
            account = account_cutoff_set(
                account_id=account.id, cutoff_at=data.validated_data["cutoff_at"]
            )
        return Response(AccountOut(account).data)


class DashboardKeysApi(APIView):
    @extend_schema(
        operation_id="dashboard_key_list",
        tags=["accounts"],
        responses={200: DashboardKeyListOut, **NOT_FOUND},
    )
    def get(self, request: Request, account_id: str) -> Response:
        account = get_object_or_404(Account, pk=account_id)
        return Response(DashboardKeyListOut({"results": dashboard_key_list(account=account)}).data)

    @extend_schema(
        operation_id="dashboard_key_create",
        tags=["accounts"],
        request=None,
        responses={201: DashboardKeyCreatedOut, **NOT_FOUND},
    )
    def post(self, request: Request, account_id: str) -> Response:
        account = get_object_or_404(Account, pk=account_id)
        dashboard_key, key = dashboard_key_create(account=account)
        created = {"id": dashboard_key.pk, "key": key, "created_at": dashboard_key.created_at}
        return Response(DashboardKeyCreatedOut(created).data, status=status.HTTP_201_CREATED)


# A dashboard key's id: ASCII digits, few enough for a 64-bit integer.
KEY_ID = re.compile(r"[0-9]{1,18}")


class DashboardKeyDetailApi(APIView):
    @extend_schema(
        operation_id="dashboard_key_revoke",
        tags=["accounts"],
        description=(
            "Revoke the key: it opens no dashboard from now on, and dashboards open with it "
            "are closed with 4401. Revoking a revoked key changes nothing."
        ),
        responses={204: None, **NOT_FOUND},
    )
    def delete(self, request: Request, key_id: str) -> Response:
        if not KEY_ID.fullmatch(key_id):  # ids are numbers the database holds: else no key
            raise Http404
        key = get_object_or_404(DashboardKey, pk=int(key_id))
        dashboard_key_revoke(key=key, at=timezone.now())
        return Response(status=status.HTTP_204_NO_CONTENT)


class AccountUsageApi(APIView):
    @extend_schema(
        operation_id="account_usage",
        tags=["accounts"],
        responses={200: AccountUsageOut, **NOT_FOUND},
    )
    def get(self, request: Request, account_id: str) -> Response:
        account = get_object_or_404(Account, pk=account_id)
        return Response(AccountUsageOut(account_usage(account=account, at=timezone.now())).data)


class ChargeListApi(APIView):
    """Charges in id order, a page at a time; `next` carries on after the page's last id."""

    @extend_schema(
        operation_id="charge_list",
        tags=["accounts"],
        parameters=[ChargeListInput],
        responses={200: ChargePageOut, **ERRORS, 404: NOT_FOUND[404]},
    )
    def get(self, request: Request, account_id: str) -> Response:
        account = get_object_or_404(Account, pk=account_id)
        query = ChargeListInput(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        limit = params["limit"]
        charges = list(
            charge_list(
                account=account,
                meter_id=params.get("meter"),
                since=params.get("since"),
                after_id=params.get("after"),
            )[: limit + 1]
        )
        next_url = None
        if len(charges) > limit:
            charges = charges[:limit]
            following = request.query_params.copy()
            following["after"] = str(charges[-1].id)
            next_url = request.build_absolute_uri(f"{request.path}?{following.urlencode()}")
        return Response(ChargePageOut({"results": charges, "next": next_url}).data)


class TariffCreateApi(APIView):
    @extend_schema(
        operation_id="tariff_create",
        tags=["tariffs"],
        request=TariffCreateRequest,
        responses={201: TariffOut, **ERRORS},
        examples=[TARIFF_EXAMPLE],
    )
    def post(self, request: Request) -> Response:
        data = TariffCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        tariff = tariff_create(**data.validated_data)
        return Response(TariffOut(tariff).data, status=status.HTTP_201_CREATED)


class TariffDetailApi(APIView):
    @extend_schema(
        operation_id="tariff_get",
        tags=["tariffs"],
        responses={200: TariffOut, **NOT_FOUND},
    )
    def get(self, request: Request, tariff_id: str) -> Response:
        return Response(TariffOut(get_object_or_404(Tariff, pk=tariff_id)).data)
