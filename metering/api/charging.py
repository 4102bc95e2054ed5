"""Views of charge points' id tags and charging sessions (CONTRACT.md section 8): parse,
call a service or selector, answer."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.api.errors import ERRORS, NOT_FOUND, ErrorOut
from billing.models import Account
from metering.api.serializers import (
    ChargingSessionOut,
    IdTagCreateInput,
    IdTagOut,
    IdTagUpdateInput,
)
from metering.models import ChargingSession, IdTag
from metering.ocpp.selectors import charging_session_list, id_tag_list
from metering.ocpp.services import (
    NotStoppable,
    charging_session_stop,
    id_tag_create,
    id_tag_update,
)

CONFLICT = {
    409: OpenApiResponse(ErrorOut, description="Completed, or its charge point is offline.")
}


class IdTagsApi(APIView):
    @extend_schema(
        operation_id="id_tag_list",
        tags=["charging"],
        responses={200: IdTagOut(many=True), **NOT_FOUND},
    )
    def get(self, request: Request, account_id: str) -> Response:
        account = get_object_or_404(Account, pk=account_id)
        return Response(IdTagOut(id_tag_list(account=account), many=True).data)

    @extend_schema(
        operation_id="id_tag_create",
        tags=["charging"],
        description="An id tag (RFID card, app token) that may start charging at the "
        "account's charge points: Authorize answers Accepted for it while it is active.",
        request=IdTagCreateInput,
        responses={201: IdTagOut, **ERRORS, 404: NOT_FOUND[404]},
    )
    def post(self, request: Request, account_id: str) -> Response:
        account = get_object_or_404(Account, pk=account_id)
        data = IdTagCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        tag = id_tag_create(account=account, **data.validated_data)
        return Response(IdTagOut(tag).data, status=status.HTTP_201_CREATED)


class IdTagDetailApi(APIView):
    @extend_schema(
        operation_id="id_tag_get", tags=["charging"], responses={200: IdTagOut, **NOT_FOUND}
    )
    def get(self, request: Request, tag_id: str) -> Response:
        return Response(IdTagOut(get_object_or_404(IdTag, pk=tag_id)).data)

    @extend_schema(
        operation_id="id_tag_update",
        tags=["charging"],
        description='`{"active": false}`: Authorize answers Blocked for the tag from now on.',
        request=IdTagUpdateInput,
        responses={200: IdTagOut, **ERRORS, 404: NOT_FOUND[404]},
    )
    def patch(self, request: Request, tag_id: str) -> Response:
        tag = get_object_or_404(IdTag, pk=tag_id)
        data = IdTagUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        return Response(IdTagOut(id_tag_update(tag=tag, **data.validated_data)).data)


class ChargingSessionListInput(serializers.Serializer):
    status = serializers.ChoiceField(choices=ChargingSession.Status.choices, required=False)


class ChargingSessionsApi(APIView):
    @extend_schema(
        operation_id="charging_session_list",
        tags=["charging"],
        description="The account's charging sessions, newest first; an active one's "
        "`energy_kwh` and `amount` are what it has been charged so far.",
        parameters=[ChargingSessionListInput],
        responses={200: ChargingSessionOut(many=True), **ERRORS, 404: NOT_FOUND[404]},
    )
    def get(self, request: Request, account_id: str) -> Response:
        account = get_object_or_404(Account, pk=account_id)
        query = ChargingSessionListInput(data=request.query_params)
        query.is_valid(raise_exception=True)
        sessions = charging_session_list(account=account, **query.validated_data)
        return Response(ChargingSessionOut(sessions, many=True).data)


class ChargingSessionDetailApi(APIView):
    @extend_schema(
        operation_id="charging_session_get",
        tags=["charging"],
        responses={200: ChargingSessionOut, **NOT_FOUND},
    )
    def get(self, request: Request, session_id: str) -> Response:
        return Response(ChargingSessionOut(_session(session_id)).data)


class ChargingSessionStopApi(APIView):
    @extend_schema(
        operation_id="charging_session_stop",
        tags=["charging"],
        description="Sends RemoteStopTransaction to the charge point, through whichever web "
        "process holds its connection. 202: sent; the charge point's answer is recorded in "
        "`remote_stop_status`, and its StopTransaction completes the session.",
        request=None,
        responses={202: ChargingSessionOut, **NOT_FOUND, **CONFLICT},
    )
    def post(self, request: Request, session_id: str) -> Response:
        try:
            session = charging_session_stop(session=_session(session_id))
        except NotStoppable as refusal:
            body = ErrorOut({"code": "not_stoppable", "detail": str(refusal)}).data
            return Response(body, status=status.HTTP_409_CONFLICT)
        return Response(ChargingSessionOut(session).data, status=status.HTTP_202_ACCEPTED)


def _session(session_id: str) -> ChargingSession:
    sessions = ChargingSession.objects.select_related("meter", "account")
    return get_object_or_404(sessions, pk=session_id)
