"""Authentication of the operator API: `Authorization: Bearer <operator key>`.

Keys are looked up by their SHA-256 (billing/keys.py), never compared in Python.
"""

from dataclasses import dataclass

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from billing.keys import secret_hash
from billing.models import OperatorKey


@dataclass(frozen=True)
class Operator:
    """`request.user` of an operator API request: whoever holds `key`."""

    key: OperatorKey
    is_authenticated: bool = True


class OperatorKeyAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Operator, OperatorKey] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            # No credentials: IsAuthenticated answers 401 with our challenge.
            return None
        if len(parts) != 2:
            raise AuthenticationFailed("Malformed Authorization header: expected 'Bearer <key>'.")
        try:
            key = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise AuthenticationFailed("Invalid API key.") from None
        operator_key = OperatorKey.objects.filter(
            key_hash=secret_hash(key), revoked_at__isnull=True
        ).first()
        if operator_key is None:
            raise AuthenticationFailed("Invalid API key.")
        return Operator(key=operator_key), operator_key

    def authenticate_header(self, request: Request) -> str:
        # Present, so DRF answers 401 (not 403) with `WWW-Authenticate: Bearer`.
        return self.keyword
