"""One charge point's connection, as the central system runs it, without the socket.

`CentralSystem` is handed each text frame the charge point sends (`received`) and
sends its answers through `send`. The charge point's calls are answered one at a
time, in the order they came (OCPP-J: a charge point waits for each answer, and a
MeterValues must not overtake the StartTransaction before it), by a task of their
own, so that the connection stays free to hear the answers to the calls Meterline
makes meanwhile (RemoteStopTransaction).

Readings are rated through `rate_once` (the consumer hands them to its process's
batcher; tests rate them inline), resent after `busy` until they are committed:
Meterline's own state is never a reason to refuse a transaction message.
"""

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from channels.db import database_sync_to_async
from django.utils import timezone

from metering.ocpp import actions
from metering.ocpp.framing import (
    BadCall,
    Call,
    CallError,
    CallResult,
    OcppError,
    Unanswerable,
    call_text,
    error_text,
    frame_parse,
    result_text,
)
from metering.ocpp.schemas import payload_check
from metering.ocpp.selectors import ChargePoint, SessionRef, account_cut_off, session_find
from metering.ocpp.services import remote_stop_record
from protocol import BUSY_RETRY_MS, ReadingIn

logger = logging.getLogger(__name__)

# Calls a charge point may have waiting for their answers; OCPP-J allows one, so more
# means a charge point that does not wait, and what it sends beyond is not answered.
MAX_WAITING_CALLS = 16
# Readings handed to the workers and not answered this long are handed over again (a
# lost batch; a late answer to the first try is a duplicate then).
RESUBMIT_AFTER_SECONDS = 10.0
# How long Meterline waits for the charge point's answer to its own calls.
CALL_TIMEOUT_SECONDS = 30.0

Send = Callable[[str], Awaitable[None]]
RateOnce = Callable[[Sequence[ReadingIn]], Awaitable[dict[str, Any]]]
Publish = Callable[[list[dict[str, Any]]], Awaitable[None]]


class CentralSystem:
    def __init__(
        self, *, charge_point: ChargePoint, send: Send, rate_once: RateOnce, publish: Publish
    ):
        self.charge_point = charge_point
        self.send = send
        self.rate_once = rate_once
        self.publish = publish  # events for the account's dashboards
        self.calls: asyncio.Queue[Call | BadCall] = asyncio.Queue(MAX_WAITING_CALLS)
        self.pending: dict[str, asyncio.Future] = {}  # our calls' unique ids -> their answers
        self.call_lock = asyncio.Lock()  # one call of ours at a time, as OCPP-J asks
        self.sessions: dict[int, SessionRef] = {}  # transaction id -> session, once seen
        self.first_call_answered = False
        self.tasks: set[asyncio.Task] = set()
        self.spawn(self._serve())

    def spawn(self, coroutine) -> None:
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def close(self) -> None:
        """The connection has gone: stop answering, forget what waits."""
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for future in self.pending.values():
            future.cancel()

    def received(self, text: str | bytes) -> None:
        """A frame from the charge point: a call is queued, an answer to ours is handed over."""
        try:
            frame = frame_parse(text)
        except Unanswerable as error:
            logger.debug("ignoring a frame of %s: %s", self.charge_point.charge_point_id, error)
            return
        if isinstance(frame, CallResult | CallError):
            future = self.pending.get(frame.unique_id)
            if future is not None and not future.done():
                future.set_result(frame)
            return
        try:
            self.calls.put_nowait(frame)
        except asyncio.QueueFull:
            logger.warning(
                "%s sends calls without waiting for answers; not answering %s",
                self.charge_point.charge_point_id,
                frame.unique_id,
                extra={"meter": self.charge_point.meter_id},
            )

    async def _serve(self) -> None:
        while True:
            call = await self.calls.get()
            answer = await self._answer(call)
            if answer is not None:
                await self.send(answer)
            if not self.first_call_answered:
                self.first_call_answered = True
                self.spawn(self._stop_if_cut_off())

    async def _answer(self, call: Call | BadCall) -> str | None:
        """The frame answering `call`, or None: no answer (the charge point will resend)."""
        if isinstance(call, BadCall):
            return error_text(call.unique_id, call.error)
        handler = actions.HANDLERS.get(call.action)
        if handler is None:
            error = OcppError("NotImplemented", f"Meterline does not answer {call.action[:40]}")
            return error_text(call.unique_id, error)
        try:
            payload_check(call.action, call.payload)
            return result_text(call.unique_id, await handler(self, call.payload))
        except OcppError as error:
            return error_text(call.unique_id, error)
        except Exception:
            logger.exception(
                "answering %s of %s failed",
                call.action,
                self.charge_point.charge_point_id,
                extra={"meter": self.charge_point.meter_id},
            )
            if call.action in actions.TRANSACTION_ACTIONS:
                return None  # never a CallError for our own trouble: it will come again
            return error_text(call.unique_id, OcppError("InternalError", "try again later"))

    # --- what handlers use ---------------------------------------------------------

    async def rated(self, readings: Sequence[ReadingIn]) -> dict[str, Any]:
        """Rate the readings, handing them over again until the answer says they are
        committed (or refused, which resending will not change)."""
        while True:
            try:
                async with asyncio.timeout(RESUBMIT_AFTER_SECONDS):
                    answer = await self.rate_once(readings)
            except TimeoutError:
                continue
            if not answer.get("busy"):
                for error in answer.get("errors", ()):
                    logger.info(
                        "%s: reading %s refused: %s",
                        self.charge_point.charge_point_id,
                        error.get("id"),
                        error.get("code"),
                        extra={"meter": self.charge_point.meter_id},
                    )
                return answer
            await asyncio.sleep(BUSY_RETRY_MS / 1000)

    async def session(self, transaction_id: int) -> SessionRef | None:
        """The session of a transaction id of this charge point; None if Meterline gave
        it no such transaction."""
        if transaction_id not in self.sessions:
            session = await database_sync_to_async(session_find)(
                meter_id=self.charge_point.meter_id, transaction_id=transaction_id
            )
            if session is None:
                return None
            self.sessions[transaction_id] = session
        return self.sessions[transaction_id]

    # --- calls Meterline makes -------------------------------------------------------

    async def call(self, action: str, payload: dict[str, Any]) -> CallResult | CallError:
        """Send a call to the charge point and wait for its answer (TimeoutError)."""
        async with self.call_lock:
            unique_id = str(uuid.uuid4())
            future = asyncio.get_running_loop().create_future()
            self.pending[unique_id] = future
            try:
                await self.send(call_text(unique_id, action, payload))
                async with asyncio.timeout(CALL_TIMEOUT_SECONDS):
                    return await future
            finally:
                del self.pending[unique_id]

    async def remote_stop(self, *, session_id: str, transaction_id: int) -> str:
        """RemoteStopTransaction for one session; the charge point's answer, recorded."""
        requested_at = timezone.now()
        try:
            answer = await self.call("RemoteStopTransaction", {"transactionId": transaction_id})
        except TimeoutError:
            status = f"no answer within {CALL_TIMEOUT_SECONDS:.0f} s"
        else:
            status = _remote_stop_status(answer)
        await database_sync_to_async(remote_stop_record)(
            session_id=session_id, status=status, requested_at=requested_at
        )
        return status

    async def sessions_stop(self, sessions: Sequence[SessionRef]) -> None:
        for session in sessions:
            await self.remote_stop(session_id=session.id, transaction_id=session.transaction_id)

    async def _stop_if_cut_off(self) -> None:
        """A charge point that connects while its account is cut off hears it at once."""
        if await database_sync_to_async(account_cut_off)(account_id=self.charge_point.account_id):
            await self.sessions_stop(await actions.sessions_active_of(self))


def _remote_stop_status(answer: CallResult | CallError) -> str:
    if isinstance(answer, CallError):
        return f"CallError {answer.code}"[:64]
    payload = answer.payload if isinstance(answer.payload, dict) else {}
    try:
        payload_check("RemoteStopTransactionResponse", payload)
    except OcppError as error:
        return f"malformed answer ({error.code})"
    return payload["status"]
