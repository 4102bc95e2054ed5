"""Views of the meter endpoints: parse, call a service, answer."""

from django.shortcuts import get_object_or_404
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from metering.api.serializers import MeterCreateInput, MeterUpdateInput, meter_out
from metering.models import Meter
from metering.services import meter_create, meter_token_rotate, meter_update


class MeterCreateApi(APIView):
    def post(self, request: Request) -> Response:
        data = MeterCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        meter, token = meter_create(**data.validated_data)
        return Response({**meter_out(meter), "token": token}, status=status.HTTP_201_CREATED)


class MeterDetailApi(APIView):
    def get(self, request: Request, meter_id: str) -> Response:
        return Response(meter_out(get_object_or_404(Meter, pk=meter_id)))

    def patch(self, request: Request, meter_id: str) -> Response:
        meter = get_object_or_404(Meter, pk=meter_id)
        data = MeterUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        meter = meter_update(meter=meter, **data.validated_data)
        return Response(meter_out(meter))


class MeterTokenRotateApi(APIView):
    def post(self, request: Request, meter_id: str) -> Response:
        meter = get_object_or_404(Meter, pk=meter_id)
        token = meter_token_rotate(meter=meter)
        return Response({"id": meter.id, "token": token})
