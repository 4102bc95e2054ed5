"""Authentication of the operator API: `Authorization: Bearer <operator key>`.

Keys are looked up by their SHA-256 (billing/keys.py), never compared in Python.
`bearer_token` reads a request's Bearer header (protocol.bearer_credentials, which the
WebSocket consumers read theirs with too), shared with device HTTP ingest
(metering/api/auth.py).
"""

from dataclasses import dataclass

from django.http import HttpRequest
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from billing.keys import secret_hash
from billing.models import OperatorKey
from protocol import bearer_credentials

BEARER = "Bearer"


def bearer_token(request: HttpRequest | Request) -> str | None:
    """The token of `Authorization: Bearer <token>`, or None when no Bearer credentials came.

    Raises AuthenticationFailed when the header says Bearer but holds no single token.
    """
    try:
        return bearer_credentials(get_authorization_header(request))
    except ValueError as error:
        raise AuthenticationFailed(str(error)) from None


@dataclass(frozen=True)
class Operator:
    """`request.user` of an operator API request: whoever holds `key`."""

    key: OperatorKey
    is_authenticated: bool = True


class OperatorKeyAuthentication(BaseAuthentication):
    keyword = BEARER

    def authenticate(self, request: Request) -> tuple[Operator, OperatorKey] | None:
        key = bearer_token(request)
        if key is None:
            # No credentials: IsAuthenticated answers 401 with our challenge.
            return None
        operator_key = OperatorKey.objects.filter(
            key_hash=secret_hash(key), revoked_at__isnull=True
        ).first()
        if operator_key is None:
            raise AuthenticationFailed("Invalid API key.")
        return Operator(key=operator_key), operator_key

    def authenticate_header(self, request: Request) -> str:
        # Present, so DRF answers 401 (not 403) with `WWW-Authenticate: Bearer`.
        return self.keyword
