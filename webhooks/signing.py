"""Standard Webhooks signatures (https://www.standardwebhooks.com/): what a receiver verifies.

Each request carries `webhook-id` (the event's id, the same on every retry),
`webhook-timestamp` (Unix seconds of this attempt) and `webhook-signature`: `v1,` and the
base64 HMAC-SHA256 of "{id}.{timestamp}.{body}" under the secret's bytes (the base64 after
"whsec_"). While a rotated-out secret still signs, the header holds both signatures,
space-separated; a receiver accepts the request if any one verifies.
"""

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence

PREFIX = "whsec_"
SECRET_BYTES = 32


def secret_new() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signature(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(PREFIX))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def webhook_headers(
    *, secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers, signed with each of `secrets`."""
    signatures = [
        signature(secret=secret, msg_id=msg_id, timestamp=timestamp, body=body)
        for secret in secrets
    ]
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signatures),
    }
