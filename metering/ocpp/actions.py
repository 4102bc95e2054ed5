"""What Meterline answers to each action a charge point sends (CONTRACT.md section 8).

Each handler takes the connection (metering/ocpp/central.py) and a payload that has
passed its schema, and returns the CallResult's payload, or raises OcppError for a
payload that breaks a rule the schema cannot say. Transaction messages are answered
once their readings are committed, and never refused for Meterline's own state: a
transaction Meterline does not know (-1 included) is recorded and answered as usual.
"""

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async
from django.utils import timezone

from billing.periods import isoformat
from metering.ocpp.framing import OcppError
from metering.ocpp.readings import (
    meter_value_readings,
    register_fits,
    start_reading,
    stop_readings,
)
from metering.ocpp.schemas import timestamp_parse
from metering.ocpp.selectors import SessionRef, id_tag_status, sessions_active
from metering.ocpp.services import (
    charging_session_rendered,
    connector_status_record,
    session_complete,
    transaction_start,
    unknown_transaction_record,
)

if TYPE_CHECKING:
    from metering.ocpp.central import CentralSystem

Handler = Callable[["CentralSystem", dict[str, Any]], Awaitable[dict[str, Any]]]
# Connector ids are kept in 32-bit columns; a charge point has a handful.
MAX_CONNECTOR_ID = 2**31 - 1
# The heartbeat interval BootNotification gives: the WebSocket's own pings keep the
# connection alive, so a charge point need not say more often that it is there.
HEARTBEAT_SECONDS = 300
TRANSACTION_ACTIONS = frozenset({"StartTransaction", "MeterValues", "StopTransaction"})


def _now() -> str:
    return isoformat(timezone.now())


async def boot_notification(link: "CentralSystem", payload: dict[str, Any]) -> dict[str, Any]:
    return {"status": "Accepted", "currentTime": _now(), "interval": HEARTBEAT_SECONDS}


async def heartbeat(link: "CentralSystem", payload: dict[str, Any]) -> dict[str, Any]:
    return {"currentTime": _now()}


async def status_notification(link: "CentralSystem", payload: dict[str, Any]) -> dict[str, Any]:
    """Kept per connector, and shown on the account's dashboards as it comes."""
    connector_id = _connector(payload, minimum=0)
    at = timestamp_parse(payload["timestamp"]) if "timestamp" in payload else timezone.now()
    status = {
        "connector_id": connector_id,
        "status": payload["status"],
        "error_code": payload["errorCode"],
        "info": payload.get("info", ""),
        "at": at,
    }
    meter_id = link.charge_point.meter_id
    await database_sync_to_async(connector_status_record)(meter_id=meter_id, **status)
    event = {
        "type": "connector_status",  # not numbered: dashboards show it as it comes
        "meter": meter_id,
        "charge_point_id": link.charge_point.charge_point_id,
        **status,
        "at": isoformat(at),
    }
    await link.publish([event])
    return {}


async def authorize(link: "CentralSystem", payload: dict[str, Any]) -> dict[str, Any]:
    return {"idTagInfo": {"status": await _tag_status(link, payload["idTag"])}}


async def start_transaction(link: "CentralSystem", payload: dict[str, Any]) -> dict[str, Any]:
    """A transaction id, the same for the same StartTransaction resent; answered once its
    meterStart, the session's baseline, is committed."""
    connector_id = _connector(payload, minimum=1)
    meter_start = _register(payload, "meterStart")
    started_at = timestamp_parse(payload["timestamp"])
    session = await database_sync_to_async(transaction_start)(
        charge_point=link.charge_point,
        connector_id=connector_id,
        id_tag=payload["idTag"],
        meter_start_wh=meter_start,
        started_at=started_at,
    )
    link.sessions[session.transaction_id] = session
    if session.billed:
        baseline = start_reading(
            transaction_id=session.transaction_id, meter_start_wh=meter_start, at=started_at
        )
        await link.rated([baseline])
    await link.publish([await _session_event(session.id)])
    # The tag's status when the session started: a resend hears what the first one heard.
    tag_info = {"status": session.id_tag_status}
    return {"transactionId": session.transaction_id, "idTagInfo": tag_info}


async def meter_values(link: "CentralSystem", payload: dict[str, Any]) -> dict[str, Any]:
    """`{}` once the registers in it are committed. Without a transaction id the values
    are the charge point's own (connector 0, its main meter): not a session's, not billed."""
    _connector(payload, minimum=0)
    transaction_id = payload.get("transactionId")
    if transaction_id is None:
        return {}
    session = await _session_or_record(link, transaction_id, "MeterValues", payload)
    if session is None or not session.billed:
        return {}
    readings = meter_value_readings(
        transaction_id=transaction_id, meter_values=payload["meterValue"]
    )
    if readings:
        await link.rated(readings)
    return {}


async def stop_transaction(link: "CentralSystem", payload: dict[str, Any]) -> dict[str, Any]:
    """Answered once meterStop and transactionData are committed and the session completed."""
    meter_stop = _register(payload, "meterStop")
    stopped_at = timestamp_parse(payload["timestamp"])
    transaction_id = payload["transactionId"]
    session = await _session_or_record(link, transaction_id, "StopTransaction", payload)
    if session is not None:
        if session.billed:
            readings = stop_readings(
                transaction_id=transaction_id,
                meter_stop_wh=meter_stop,
                at=stopped_at,
                transaction_data=payload.get("transactionData", ()),
            )
            await link.rated(readings)
        completed = await database_sync_to_async(session_complete)(
            session_id=session.id,
            stopped_at=stopped_at,
            meter_stop_wh=meter_stop,
            reason=payload.get("reason", "Local"),
        )
        if completed:
            await link.publish([await _session_event(session.id)])
    if "idTag" not in payload:
        return {}
    return {"idTagInfo": {"status": await _tag_status(link, payload["idTag"])}}


async def data_transfer(link: "CentralSystem", payload: dict[str, Any]) -> dict[str, Any]:
    return {"status": "UnknownVendorId"}


async def acknowledged(link: "CentralSystem", payload: dict[str, Any]) -> dict[str, Any]:
    """Notifications Meterline has no use for, answered so the charge point stops sending."""
    return {}


HANDLERS: dict[str, Handler] = {
    "BootNotification": boot_notification,
    "Heartbeat": heartbeat,
    "StatusNotification": status_notification,
    "Authorize": authorize,
    "StartTransaction": start_transaction,
    "MeterValues": meter_values,
    "StopTransaction": stop_transaction,
    "DataTransfer": data_transfer,
    "DiagnosticsStatusNotification": acknowledged,
    "FirmwareStatusNotification": acknowledged,
}


async def sessions_active_of(link: "CentralSystem") -> list[SessionRef]:
    return await database_sync_to_async(sessions_active)(meter_id=link.charge_point.meter_id)


async def _session_event(session_id: str) -> dict[str, Any]:
    """For the dashboards: a session started or completed, as the API shows it."""
    session = await database_sync_to_async(charging_session_rendered)(session_id=session_id)
    return {"type": "charging_session", "session": session}


async def _tag_status(link: "CentralSystem", id_tag: str) -> str:
    account_id = link.charge_point.account_id
    return await database_sync_to_async(id_tag_status)(account_id=account_id, id_tag=id_tag)


async def _session_or_record(
    link: "CentralSystem", transaction_id: int, action: str, payload: dict[str, Any]
) -> SessionRef | None:
    """The transaction's session; one Meterline does not know is recorded, charged nothing."""
    session = await link.session(transaction_id)
    if session is None:
        await database_sync_to_async(unknown_transaction_record)(
            meter_id=link.charge_point.meter_id,
            transaction_id=transaction_id,
            action=action,
            payload=payload,
        )
    return session


def _connector(payload: dict[str, Any], *, minimum: int) -> int:
    connector_id = payload["connectorId"]
    if not minimum <= connector_id <= MAX_CONNECTOR_ID:
        detail = f"payload.connectorId must be from {minimum} to {MAX_CONNECTOR_ID}"
        raise OcppError("PropertyConstraintViolation", detail)
    return connector_id


def _register(payload: dict[str, Any], name: str) -> int:
    wh = payload[name]
    if not register_fits(wh):
        detail = f"payload.{name} must be a register from 0 Wh up to 10^18 Wh"
        raise OcppError("PropertyConstraintViolation", detail)
    return wh
