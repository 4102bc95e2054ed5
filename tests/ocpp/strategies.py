"""Hypothesis strategies for OCPP 1.6 payloads: valid ones of every action Meterline
answers, mutated (keys dropped, values of any type, numbers of every size)."""

import json

from hypothesis import strategies as st

TS = "2026-11-23T18:30:00Z"
SAMPLE = {"value": "1000", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
VALID = {
    "BootNotification": {"chargePointVendor": "A", "chargePointModel": "B"},
    "Heartbeat": {},
    "StatusNotification": {"connectorId": 1, "errorCode": "NoError", "status": "Available"},
    "Authorize": {"idTag": "04A2B3C4"},
    "StartTransaction": {"connectorId": 1, "idTag": "X", "meterStart": 0, "timestamp": TS},
    "MeterValues": {
        "connectorId": 1,
        "transactionId": 1,
        "meterValue": [{"timestamp": TS, "sampledValue": [SAMPLE]}],
    },
    "StopTransaction": {"transactionId": 1, "meterStop": 5000, "timestamp": TS},
    "DataTransfer": {"vendorId": "v"},
}
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([-1, 0, 1, 2, 2**31, 2**63, -(2**63) - 1, 10**40])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["", TS, "1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "x\u0000"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
keys = st.sampled_from(
    ["connectorId", "transactionId", "idTag", "meterStart", "meterStop", "timestamp",
     "meterValue", "transactionData", "sampledValue", "value", "unit", "status", "extra"]
)  # fmt: skip


# Transaction ids and registers of every size: Meterline's, unknown ones, -1, beyond
# 32 and 64 bits.
numbers = st.integers() | st.sampled_from([-1, 0, 1, 2**31 - 1, 2**31, 2**63, 10**30, -(10**30)])


@st.composite
def mutated(draw) -> tuple[str, dict]:
    action = draw(st.sampled_from(sorted(VALID)))
    payload = json.loads(json.dumps(VALID[action]))
    for name in ("transactionId", "meterStart", "meterStop", "connectorId"):
        if name in payload and draw(st.booleans()):
            payload[name] = draw(numbers)
    for _ in range(draw(st.integers(0, 3))):
        how = draw(st.sampled_from(["drop", "set", "sample", "text"]))
        strings = sorted(k for k, v in payload.items() if isinstance(v, str))
        if how == "drop" and payload:
            payload.pop(draw(st.sampled_from(sorted(payload))))
        elif how == "text" and strings:  # outside an enum, too long, not ASCII
            payload[draw(st.sampled_from(strings))] = draw(st.text(max_size=60))
        elif how == "set":
            payload[draw(keys)] = draw(json_values)
        elif how == "sample" and action == "MeterValues":
            sample = payload.setdefault("meterValue", [{}])
            if isinstance(sample, list) and sample and isinstance(sample[0], dict):
                sample[0][draw(keys)] = draw(json_values)
    return action, payload
