"""Fuzzed OCPP frames at the real ChargePointConsumer: never a crash, never a charge.

Garbage, JSON of any shape, calls of every action with payloads mutated from valid ones
(keys dropped, values of any type, huge and negative ids, odd timestamps), answers to
calls never made. After each example the connection must still answer a Heartbeat,
everything it sent must be well-formed OCPP-J, and the meter must have no reading.
Every call that has a unique id gets exactly one answer. The charge point's account
has no id tags, so no session of its is billed.
"""

import base64
import json
import uuid
from collections import Counter

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from metering.models import IdTag, Reading
from tests.consumers.conftest import layer_emptied, websocket_app
from tests.ocpp.conftest import make_charge_point
from tests.ocpp.strategies import VALID, json_values, mutated

pytestmark = pytest.mark.django_db(transaction=True)

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ERROR_CODES = {
    "NotImplemented",
    "NotSupported",
    "InternalError",
    "ProtocolError",
    "SecurityError",
    "FormationViolation",
    "PropertyConstraintViolation",
    "OccurenceConstraintViolation",
    "TypeConstraintViolation",
    "GenericError",
}
# Mostly ids a charge point would use, so that most calls reach their handlers.
unique_ids = st.one_of(
    st.uuids().map(str), st.uuids().map(str), st.text(max_size=40), st.integers(), st.none()
)
calls = st.builds(
    lambda uid, action_payload: json.dumps([2, uid, *action_payload]),
    unique_ids,
    st.one_of(mutated(), mutated(), st.tuples(st.text(max_size=30), json_values)),
)
frames = st.one_of(
    calls,
    calls,
    st.builds(lambda uid, body: json.dumps([3, uid, body]), unique_ids, json_values),
    st.builds(
        lambda uid, code, body: json.dumps([4, uid, code, "d", body]),
        unique_ids,
        st.text(max_size=20),
        json_values,
    ),
    json_values.map(json.dumps),
    st.text(max_size=200),
)


@database_sync_to_async
def charge_point_without_tags():
    made = make_charge_point(f"FZ-{uuid.uuid4().hex[:12]}")
    IdTag.objects.filter(account=made.account).delete()
    return made


def to_be_answered(text: str) -> str | None:
    """The unique id a frame must be answered to (OCPP-J: a call, or a frame of any other
    type but 3 and 4 that has an id, answered FormationViolation), or None."""
    try:
        frame = json.loads(text)
    except ValueError:
        return None
    if not isinstance(frame, list) or len(frame) < 3:
        return None
    unique_id = frame[1]
    if not isinstance(unique_id, str) or not 1 <= len(unique_id) <= 36:
        return None
    if type(frame[0]) is int and frame[0] in (3, 4):
        return None
    return unique_id


def well_formed(frame: list) -> bool:
    if frame[0] == 3:
        return len(frame) == 3 and isinstance(frame[1], str) and isinstance(frame[2], dict)
    return (
        frame[0] == 4
        and len(frame) == 5
        and frame[2] in ERROR_CODES
        and isinstance(frame[3], str)
        and isinstance(frame[4], dict)
    )


BEYOND_64_BITS = [
    json.dumps([2, "s", "StopTransaction", {**VALID["StopTransaction"], "transactionId": 10**30}]),
    json.dumps([2, "m", "MeterValues", {**VALID["MeterValues"], "transactionId": 2**63}]),
]


@FUZZ
@example(sent=BEYOND_64_BITS)  # once recorded into a 64-bit column, and never answered
@given(sent=st.lists(frames, min_size=1, max_size=8))
async def test_fuzzed_frames_never_crash_the_connection_nor_charge(sent):
    await layer_emptied()
    made = await charge_point_without_tags()
    cp_id = made.meter.charge_point_id
    secret = base64.b64encode(f"{cp_id}:{made.password}".encode()).decode()
    client = WebsocketCommunicator(
        websocket_app,
        f"/ocpp/{cp_id}",
        headers=[(b"authorization", f"Basic {secret}".encode())],
        subprotocols=["ocpp1.6"],
    )
    assert (await client.connect())[0]
    for frame in sent:  # as a text frame, the empty one too (send_to refuses that)
        await client.send_input({"type": "websocket.receive", "text": frame})
    probe = uuid.uuid4().hex
    await client.send_to(text_data=json.dumps([2, probe, "Heartbeat", {}]))
    answered = Counter()
    while True:  # calls are answered in order: all of them come before the probe's
        answer = json.loads(await client.receive_from(timeout=10))
        assert well_formed(answer), answer
        if answer[1] == probe:
            assert answer[0] == 3 and "currentTime" in answer[2]
            break
        answered[answer[1]] += 1
        event(f"answered {answer[2] if answer[0] == 4 else sorted(answer[2])}")
    await client.disconnect()
    expected = Counter(uid for uid in map(to_be_answered, sent) if uid is not None)
    assert answered == expected, "every call answered once, nothing else"
    assert not await database_sync_to_async(Reading.objects.filter(meter=made.meter).exists)()
