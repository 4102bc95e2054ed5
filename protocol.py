"""What both sides of a socket or a channel share: the device and dashboard protocols'
codes and types, and the channel layer's names. No project imports: a device, a
web process and a rating worker can all use it.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

# --- WebSocket close codes (CONTRACT.md sections 3, 4 and 9) --------------------

CLOSE_UNAUTHENTICATED = 4401  # no, wrong or revoked credentials
CLOSE_FORBIDDEN = 4403  # a disabled meter; not allowed on this account
CLOSE_NO_ACCOUNT = 4404
CLOSE_REPLACED = 4409  # a newer connection of the same meter took over (Meterline's)
# Too many (Meterline's): a device connection spent its budget of refused frames, or
# a credential has as many dashboards open as it may. Not final: come back later
# (clients/device.py waits its longest backoff).
CLOSE_TOO_MANY = 4429
CLOSE_SERVICE_RESTART = 1012  # the web process is stopping: reconnect at once
# A device told `try_again_later` that did not leave by itself (Meterline's: as HTTP's
# 503; an application may not close with WebSocket's own 1013).
CLOSE_TRY_AGAIN_LATER = 4503
# After these a device must not reconnect with the same token: it cannot help.
CLOSE_FINAL = frozenset({CLOSE_UNAUTHENTICATED, CLOSE_FORBIDDEN})

# How long a device told `busy` waits before resending.
BUSY_RETRY_MS = 500


def try_again_message(*, retry_after_ms: int) -> dict[str, Any]:
    """The web process has more connects in hand than it admits in a while (a fleet
    coming back at once): the device closes the connection and comes back after
    `retry_after_ms`, its own turn (Meterline's extension)."""
    return {"type": "try_again_later", "retry_after_ms": retry_after_ms}


def cutoff_message(*, balance: str) -> dict[str, str]:
    """Credit control's word to a device of an account whose balance ran out (section 6)."""
    return {"type": "cutoff", "reason": "balance_exhausted", "balance": balance}


RESTORE_MESSAGE = {"type": "restore"}


def bearer_credentials(header: bytes) -> str | None:
    """The token of an `Authorization: Bearer <token>` header's value (None: the header
    is of another scheme). Raises ValueError when it says Bearer but holds no single
    token. Headers arrive as latin-1; a token outside ASCII matches no stored hash, so it
    is refused as a wrong one rather than failing to decode."""
    parts = header.split()
    if not parts or parts[0].lower() != b"bearer":
        return None
    if len(parts) != 2:
        raise ValueError("Malformed Authorization header: expected 'Bearer <token>'.")
    return parts[1].decode("latin-1")


# --- The channel layer -------------------------------------------------------------

# The channel the rating workers serve (`manage.py runworker rating`).
RATING_CHANNEL = "rating"
# How long the layer keeps a message: no answer can come later than this.
LAYER_EXPIRY_SECONDS = 60


def account_group(account_id: str) -> str:
    """The group of an account's dashboards."""
    return f"account-{account_id}"


def meter_group(meter_id: str) -> str:
    """The group of a meter's device connection (to close it from elsewhere)."""
    return f"meter-{meter_id}"


def account_devices_group(account_id: str) -> str:
    """The group of every device connection of an account (credit control's cut-off)."""
    return f"devices-{account_id}"


# Each dashboard connection also joins the group of the credential it came with, so that a
# revocation reaches it whichever web process holds it (billing/account_services.py).


def dashboard_key_group(key_id: int) -> str:
    """The dashboards that came with one dashboard key: closed when it is revoked."""
    return f"dashboard-key-{key_id}"


def operator_key_group(key_id: int) -> str:
    """The dashboards that came with one operator key: closed when it is revoked."""
    return f"operator-key-{key_id}"


def user_group(user_id: int) -> str:
    """The dashboards signed in as one user: each looks at its access again when the user
    signs out, is changed or loses a membership."""
    return f"user-{user_id}"


# --- Readings ------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadingIn:
    """A checked reading. Exactly one of quantity (delta) and value (cumulative) is set.

    `baseline`: a register that only resets the meter's baseline and adds no usage
    (an OCPP session's meterStart: the energy since the last session is not its own).
    """

    id: str
    ts: datetime
    quantity: Decimal | None = None
    value: Decimal | None = None
    baseline: bool = False

    def to_wire(self) -> dict[str, str | None]:
        """Strings only: msgpack, the channel layer's serializer, carries no Decimal or datetime."""
        wire = {
            "id": self.id,
            "ts": self.ts.isoformat(),
            "quantity": None if self.quantity is None else f"{self.quantity:f}",
            "value": None if self.value is None else f"{self.value:f}",
        }
        if self.baseline:  # absent otherwise: device readings travel as before
            wire["baseline"] = "1"
        return wire

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> "ReadingIn":
        quantity, value = data.get("quantity"), data.get("value")
        return cls(
            id=data["id"],
            ts=datetime.fromisoformat(data["ts"]),
            quantity=None if quantity is None else Decimal(quantity),
            value=None if value is None else Decimal(value),
            baseline=data.get("baseline") == "1",
        )


@dataclass  # not frozen: Python sets __traceback__ on exceptions it raises
class ReadingError(Exception):
    """One rejected reading (id None: the whole frame). Resending it will not help."""

    id: str | None
    code: str
    detail: str

    def to_message(self) -> dict[str, str | None]:
        return {"type": "error", "id": self.id, "code": self.code, "detail": self.detail}

    def to_item(self) -> dict[str, str | None]:
        """As one of the `errors` of a frame's error message (errors_message)."""
        return {"id": self.id, "code": self.code, "detail": self.detail}


def errors_message(errors: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The one `error` message answering a frame's refused readings (each an `id`, `code`,
    `detail` mapping; at least one). It carries the first one's id, code and detail, the
    contract's shape for a single error, so that a client of that shape sees an error;
    with two or more, `errors` lists them all (the first again), in the frame's order."""
    first = errors[0]
    message = {"type": "error", "id": first["id"], "code": first["code"], "detail": first["detail"]}
    if len(errors) > 1:
        message["errors"] = [
            {"id": error["id"], "code": error["code"], "detail": error["detail"]}
            for error in errors
        ]
    return message
