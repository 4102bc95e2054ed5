"""The README's webhook receiver example works as printed: the first ```python block of its
"## Webhooks" section, run as a module, answers 204 to a delivery signed by the
`standardwebhooks` library, handles a retry of the same webhook-id only once, and answers
400 to a tampered body and to a signature by another secret. No database, no server.
"""

import json
import re
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from webhooks.signing import secret_new, webhook_headers

SECTION = "## Webhooks"
README = Path(__file__).resolve().parents[2] / "README.md"


def receiver_source() -> str:
    """The first ```python block after the line "## Webhooks", within that section."""
    text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert SECTION in lines, f"no line {SECTION!r} in {README}"
    section = lines[lines.index(SECTION) + 1 :]
    following = next((i for i, line in enumerate(section) if line.startswith("## ")), None)
    body = "\n".join(section[:following]) + "\n"
    match = re.search(r"^```python\n(.*?)^```$", body, re.DOTALL | re.MULTILINE)
    assert match, f"no ```python block in the {SECTION!r} section of {README}"
    return match.group(1)


def signed_headers(secret: str, msg_id: str, body: bytes, at: datetime, *also: str) -> dict:
    """The headers of one attempt as Meterline signs them (webhooks/signing.py), with
    `secret` and any secrets `also` signing beside it (after a rotation)."""
    return webhook_headers(
        secrets=[*also, secret], msg_id=msg_id, timestamp=int(at.timestamp()), body=body
    )


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    value = secret_new()
    monkeypatch.setenv("MY_WEBHOOK_SECRET", value)
    return value


@pytest.fixture
def receiver(secret: str) -> types.ModuleType:
    """The README's block, executed as a module of its own (not as __main__: no server)."""
    module = types.ModuleType("readme_receiver")
    exec(compile(receiver_source(), "README.md (## Webhooks)", "exec"), module.__dict__)
    return module


def envelope(msg_type: str = "invoice.finalized") -> bytes:
    """A body as Meterline sends it: compact JSON of {"type", "timestamp", "data"}."""
    event = {"type": msg_type, "timestamp": "2026-12-01T00:00:00.000000Z", "data": {"id": "1"}}
    return json.dumps(event, separators=(",", ":")).encode()


def test_the_block_defines_what_a_receiver_needs(receiver: types.ModuleType) -> None:
    assert callable(receiver.handle)
    assert isinstance(receiver.seen, set) and not receiver.seen
    assert receiver.handled == []


def test_a_signed_delivery_is_handled_once_across_retries(
    receiver: types.ModuleType, secret: str
) -> None:
    body, msg_id, now = envelope(), "evt_0123456789abcdef", datetime.now(UTC)

    first = signed_headers(secret, msg_id, body, now - timedelta(seconds=60))
    assert receiver.handle(first, body) == 204
    assert receiver.seen == {msg_id}
    assert receiver.handled == [json.loads(body)]

    # A retry: the same webhook-id, signed again at its own time; header names as a
    # server may present them.
    retry = signed_headers(secret, msg_id, body, now)
    retry = {name.title(): value for name, value in retry.items()}
    assert receiver.handle(retry, body) == 204
    assert receiver.seen == {msg_id}
    assert receiver.handled == [json.loads(body)]

    # Another event is handled.
    other = envelope("meter.offline")
    assert receiver.handle(signed_headers(secret, "evt_fedcba9876543210", other, now), other) == 204
    assert receiver.seen == {msg_id, "evt_fedcba9876543210"}
    assert len(receiver.handled) == 2


def test_a_tampered_body_is_refused(receiver: types.ModuleType, secret: str) -> None:
    body = envelope()
    headers = signed_headers(secret, "evt_0123456789abcdef", body, datetime.now(UTC))
    tampered = body.replace(b'"id":"1"', b'"id":"2"')
    assert tampered != body
    assert receiver.handle(headers, tampered) == 400
    assert receiver.seen == set() and receiver.handled == []


def test_a_signature_by_another_secret_is_refused(receiver: types.ModuleType) -> None:
    body = envelope()
    headers = signed_headers(secret_new(), "evt_0123456789abcdef", body, datetime.now(UTC))
    assert receiver.handle(headers, body) == 400
    assert receiver.seen == set() and receiver.handled == []


def test_after_a_rotation_the_old_secrets_signature_beside_does_no_harm(
    receiver: types.ModuleType, secret: str
) -> None:
    body, now = envelope(), datetime.now(UTC)
    headers = signed_headers(secret, "evt_0123456789abcdef", body, now, secret_new())
    assert " " in headers["webhook-signature"]  # two signatures
    assert receiver.handle(headers, body) == 204
