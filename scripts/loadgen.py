"""Drive a running Meterline with real WebSocket devices and print acked readings/s.

    python scripts/loadgen.py --url http://127.0.0.1:8000 --key <operator key> \
        --devices 20 --batch 100 --in-flight 4 --seconds 10

Provisions one account, a per-unit tariff and N delta meters through the REST
API, streams readings from every device with at most `in-flight` unacked
frames each, and checks at the end that the account's charged total equals
the usage sent, to the last decimal.
"""

import argparse
import asyncio
import json
import statistics
import time
import urllib.request
from datetime import UTC, datetime
from decimal import Decimal

import websockets

UNIT_PRICE = Decimal("0.25")


def api(base: str, key: str, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        base + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


async def device(ws_url: str, token: str, index: int, args, deadline: float, stats: dict) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with websockets.connect(ws_url, additional_headers=headers, max_queue=None) as ws:
        window = asyncio.Semaphore(args.in_flight)
        sent_at: dict[str, float] = {}
        done = asyncio.Event()
        frames = 0

        async def reader() -> None:
            async for raw in ws:
                message = json.loads(raw)
                if message["type"] == "ack":
                    for reading_id in message["ids"] + message["duplicates"]:
                        started = sent_at.pop(reading_id, None)
                        if started is not None:
                            stats["latencies"].append(time.perf_counter() - started)
                            stats["acked"] += 1
                    window.release()
                else:
                    stats["other"].append(message)
                    window.release()
                if done.is_set() and not sent_at:
                    return

        task = asyncio.create_task(reader())
        while time.monotonic() < deadline:
            await window.acquire()
            ts = datetime.now(UTC).isoformat()
            ids = [f"d{index}-f{frames}-{i}" for i in range(args.batch)]
            readings = [{"id": rid, "ts": ts, "quantity": "1"} for rid in ids]
            if args.batch == 1:
                frame = {"type": "reading", **readings[0]}
            else:
                frame = {"type": "batch", "readings": readings}
            now = time.perf_counter()
            for rid in ids:
                sent_at[rid] = now
            await ws.send(json.dumps(frame))
            frames += 1
            stats["sent"] += args.batch
        done.set()
        if sent_at:
            await asyncio.wait_for(task, timeout=60)
        else:
            task.cancel()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--key", required=True, help="operator API key")
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--batch", type=int, default=100, help="readings per frame")
    parser.add_argument("--in-flight", type=int, default=4, help="unacked frames per device")
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()

    base = args.url.rstrip("/")
    account = api(
        base,
        args.key,
        "POST",
        "/api/v1/accounts/",
        {"name": "load", "currency": "EUR", "timezone": "UTC"},
    )
    tariff = api(
        base,
        args.key,
        "POST",
        "/api/v1/tariffs/",
        {
            "name": "load",
            "currency": "EUR",
            "unit": "kWh",
            "billing_period": "month",
            "model": "per_unit",
            "unit_price": str(UNIT_PRICE),
        },
    )
    tokens = [
        api(
            base,
            args.key,
            "POST",
            "/api/v1/meters/",
            {
                "account": account["id"],
                "tariff": tariff["id"],
                "name": f"m{i}",
                "kind": "delta",
                "rollover_at": None,
            },
        )["token"]
        for i in range(args.devices)
    ]
    ws_url = base.replace("http", "ws", 1) + "/ws/meters/"
    stats = {"sent": 0, "acked": 0, "latencies": [], "other": []}
    started = time.monotonic()
    deadline = started + args.seconds
    await asyncio.gather(
        *(device(ws_url, t, i, args, deadline, stats) for i, t in enumerate(tokens))
    )
    elapsed = time.monotonic() - started
    usage = api(base, args.key, "GET", f"/api/v1/accounts/{account['id']}/usage/")
    latencies = sorted(stats["latencies"])
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    expected = Decimal(stats["acked"]) * UNIT_PRICE
    print(
        f"devices={args.devices} batch={args.batch} in_flight={args.in_flight}: "
        f"{stats['acked'] / elapsed:,.0f} readings/s acked ({stats['acked']} in {elapsed:.1f} s), "
        f"ack latency p50 {p(0.5):.0f} ms p99 {p(0.99):.0f} ms "
        f"(mean {statistics.fmean(latencies) * 1000:.0f} ms); "
        f"total {usage['total']} expected {expected:.6f}; non-ack answers {len(stats['other'])}"
    )
    if Decimal(usage["total"]) != expected:
        raise SystemExit("charged total does not match the usage acked")


if __name__ == "__main__":
    asyncio.run(main())
