"""Authentication of device HTTP ingest: `Authorization: Bearer <device token>`, good only
for the meter named in the URL. The header is read as the operator API reads it
(billing.auth.bearer_token); the token is looked up by its hash (metering/selectors.py).
"""

from dataclasses import dataclass
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from billing.auth import BEARER, bearer_token
from metering.selectors import MeterIdentity, meter_for_token

# One answer for every refused token, so a device cannot probe which part was wrong.
WRONG_TOKEN = "missing or wrong device token"  # noqa: S105 (a message, not a secret)


@dataclass(frozen=True)
class Device:
    """`request.user` of an ingest request; `request.auth` is its meter."""

    meter: MeterIdentity
    is_authenticated: bool = True


class DeviceTokenAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Device, MeterIdentity]:
        try:
            token = bearer_token(request)
        except AuthenticationFailed:
            token = None  # malformed: refused below, with the same answer
        meter = meter_for_token(token=token) if token else None
        # No token is refused here too, not left to IsAuthenticated: one answer for all.
        if meter is None or meter.id != request.parser_context["kwargs"].get("meter_id"):
            raise AuthenticationFailed(WRONG_TOKEN)
        return Device(meter=meter), meter

    def authenticate_header(self, request: Request) -> str:
        # Present, so DRF answers 401 (not 403) with `WWW-Authenticate: Bearer`.
        return BEARER


class MeterActive(BasePermission):
    message = "this meter is disabled"

    def has_permission(self, request: Request, view: Any) -> bool:
        return request.auth.active


class DeviceTokenScheme(OpenApiAuthenticationExtension):
    target_class = DeviceTokenAuthentication
    name = "deviceToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "The meter's device token, from creating the meter or rotating its token."
            ),
        }
