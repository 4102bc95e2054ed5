"""Drive baseline (b) (http_celery.py) and time both of its answers: the 202 and the save.

    python scripts/baselines/http_load.py --url http://127.0.0.1:8002 --key <operator key> \
        --devices 50 --seconds 15

Provisions an account and N delta meters as scripts/loadgen.py does; each device keeps
`--in-flight` (1) keep-alive HTTP/1.1 connections, each POSTing one new reading as soon as
the last one is answered (closed loop, as loadgen's single-reading run; an HTTP device has
one request out at a time). "accepted": the 202
(the task is queued); "saved": the charge's rated_at, read from the database once every
accepted reading is saved (same machine, same clock). Runs with the stack's environment
(DATABASE_URL) for that read. Prints the loadgen marker lines, a summary and a JSON line.
"""

import argparse
import asyncio
import json
import os
import sys
import time
import urllib.parse
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from loadgen import UNIT_PRICE, percentiles_ms, provision, settled_total  # noqa: E402

PATH = "/baseline/readings/"
DRAIN_TIMEOUT = 300.0  # seconds for the Celery worker to save what was accepted


class Connection:
    """One keep-alive connection POSTing readings one at a time."""

    def __init__(self, base: str, token: str, name: str) -> None:
        self.url = urllib.parse.urlsplit(base)
        self.token = token
        self.name = name
        self.sent: dict[str, float] = {}
        self.accepted: dict[str, float] = {}
        self.refused: list[int] = []

    async def run(self, deadline: float) -> None:
        reader, writer = await asyncio.open_connection(self.url.hostname, self.url.port)
        n = 0
        try:
            while time.time() < deadline:
                rid = f"{self.name}-{n}"
                n += 1
                body = json.dumps(
                    {"id": rid, "ts": datetime.now(UTC).isoformat(), "quantity": "1"}
                ).encode()
                self.sent[rid] = time.time()
                writer.write(self.request(body))
                status = await self.response(reader)
                if status == 202:
                    self.accepted[rid] = time.time()
                else:
                    self.refused.append(status)
        finally:
            writer.close()

    def request(self, body: bytes) -> bytes:
        head = (
            f"POST {PATH} HTTP/1.1\r\nHost: {self.url.netloc}\r\n"
            f"Authorization: Bearer {self.token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    @staticmethod
    async def response(reader: asyncio.StreamReader) -> int:
        """The status of the next response, its body read (Django sets Content-Length)."""
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length:")
        )
        await reader.readexactly(length)
        return int(lines[0].split()[1])


def saved_times(account: str) -> dict[str, float]:
    """Reading id -> when its charge was saved (rated_at, epoch seconds)."""
    from billing.models import Charge

    rows = Charge.objects.filter(account_id=account).values_list("reading__reading_id", "rated_at")
    return {rid: rated_at.timestamp() for rid, rated_at in rows}


def wait_saved(account: str, expected: int) -> dict[str, float]:
    """Once the worker has saved `expected` charges (or DRAIN_TIMEOUT passed): their times."""
    from billing.models import Charge

    deadline = time.monotonic() + DRAIN_TIMEOUT
    while Charge.objects.filter(account_id=account).count() < expected:
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return saved_times(account)


async def stream(base: str, tokens: list[str], args) -> tuple[list[Connection], float]:
    connections = [
        Connection(base, token, f"d{i}-c{j}")
        for i, token in enumerate(tokens)
        for j in range(args.in_flight)
    ]
    print("loadgen: streaming", flush=True)
    started = time.time()
    await asyncio.gather(*(c.run(started + args.seconds) for c in connections))
    return connections, started


def figures(connections: list[Connection], saved: dict[str, float], started: float, args) -> dict:
    sent = {rid: at for c in connections for rid, at in c.sent.items()}
    accepted = {rid: at for c in connections for rid, at in c.accepted.items()}
    window_end = started + args.seconds
    in_window = [rid for rid, at in saved.items() if at <= window_end]
    accepted_in_window = sum(at <= window_end for at in accepted.values())
    return {
        "sent": len(sent),
        "accepted": len(accepted),
        "saved": len(saved),
        "refused": sum(len(c.refused) for c in connections),
        "accepted_per_s": round(accepted_in_window / args.seconds, 1),
        "saved_per_s": round(len(in_window) / args.seconds, 1),
        "accept_ms": percentiles_ms([accepted[rid] - sent[rid] for rid in accepted]),
        "saved_ms": percentiles_ms([saved[rid] - sent[rid] for rid in saved if rid in sent]),
        "drain_s": round(max(saved.values(), default=window_end) - window_end, 2),
    }


def run(args) -> dict:
    base = args.url.rstrip("/")
    account, tokens = provision(base, args.key, args.devices)
    cpu = time.process_time()
    connections, started = asyncio.run(stream(base, tokens, args))
    client_cpu = time.process_time() - cpu
    accepted = sum(len(c.accepted) for c in connections)
    saved = wait_saved(account["id"], accepted)
    print("loadgen: drained", flush=True)
    result = figures(connections, saved, started, args)
    expected = Decimal(accepted) * UNIT_PRICE
    total = settled_total(base, args.key, account["id"], expected)
    ok = total == expected and not result["refused"] and result["saved"] == accepted
    return result | {
        "total": str(total),
        "expected_total": f"{expected:.6f}",
        "client_cpu_s": round(client_cpu, 3),
        "ok": ok,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True, help="operator API key")
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--in-flight", type=int, default=1, help="connections per device")
    parser.add_argument("--seconds", type=float, default=15)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    result = run(args)
    print(
        f"http+celery: accepted {result['accepted_per_s']:,.0f}/s "
        f"(p99 {result['accept_ms']['p99']} ms), saved {result['saved_per_s']:,.0f}/s "
        f"(p99 {result['saved_ms']['p99']} ms, drained {result['drain_s']} s after the end); "
        f"total {result['total']} expected {result['expected_total']}"
    )
    print(json.dumps(result), flush=True)
    if not result["ok"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
