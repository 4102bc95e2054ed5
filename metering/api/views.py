"""Views of the meter endpoints: parse, call a service, answer.

Each answer is rendered by the output serializer its `extend_schema` names.
"""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.api.errors import ERRORS, NOT_FOUND
from metering.api.serializers import (
    MeterCreatedOut,
    MeterCreateInput,
    MeterOut,
    MeterTokenOut,
    MeterUpdateInput,
)
from metering.models import Meter
from metering.services import meter_create, meter_token_rotate, meter_update


class MeterCreateApi(APIView):
    @extend_schema(
        operation_id="meter_create",
        tags=["meters"],
        request=MeterCreateInput,
        responses={201: MeterCreatedOut, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        data = MeterCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        meter, token = meter_create(**data.validated_data)
        created = MeterCreatedOut(meter, context={"token": token})
        return Response(created.data, status=status.HTTP_201_CREATED)


class MeterDetailApi(APIView):
    @extend_schema(
        operation_id="meter_get", tags=["meters"], responses={200: MeterOut, **NOT_FOUND}
    )
    def get(self, request: Request, meter_id: str) -> Response:
        return Response(MeterOut(get_object_or_404(Meter, pk=meter_id)).data)

    @extend_schema(
        operation_id="meter_update",
        tags=["meters"],
        description=(
            "Change a meter's name, tariff (from now on) or `active`. Disabling a meter "
            "closes its open device connections with 4403 and refuses new ones."
        ),
        request=MeterUpdateInput,
        responses={200: MeterOut, **ERRORS, 404: NOT_FOUND[404]},
    )
    def patch(self, request: Request, meter_id: str) -> Response:
        meter = get_object_or_404(Meter, pk=meter_id)
        data = MeterUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        meter = meter_update(meter=meter, **data.validated_data)
        return Response(MeterOut(meter).data)


class MeterTokenRotateApi(APIView):
    @extend_schema(
        operation_id="meter_rotate_token",
        tags=["meters"],
        description="A new device token; the old one stops working at once (connections: 4401).",
        request=None,
        responses={200: MeterTokenOut, **NOT_FOUND},
    )
    def post(self, request: Request, meter_id: str) -> Response:
        meter = get_object_or_404(Meter, pk=meter_id)
        token = meter_token_rotate(meter=meter)
        return Response(MeterTokenOut({"id": meter.id, "token": token}).data)
