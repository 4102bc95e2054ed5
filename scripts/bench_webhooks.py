"""Webhook delivery figures on a live stack: events/s delivered to 100 endpoints, and the
latency from an event's commit to its arrival at the receiver, paced at 100 events/s.

    .venv/bin/python scripts/bench_webhooks.py [--endpoints 100] [--events 100]
        [--rate 100] [--seconds 20] [--latency-endpoints 1]

It starts its own stack (devtools/stack.py: Redis, PostgreSQL, daphne, workers, the
Celery worker and beat) with METERLINE_WEBHOOK_ALLOW_PRIVATE=1, and a receiver in a
process of its own: a bare asyncio HTTP server on 127.0.0.1 that answers 200 at once
and notes when each request arrived (wall clock, as this process notes commits).
This process is the producer: it writes `meter.offline` events through the outbox
(billing.outbox.event_record, one transaction each) as a rating worker or a web process
does, so each commit wakes the Celery worker; a commit's time is taken in an on_commit
callback that runs before the wake.

- Throughput: --endpoints endpoints subscribed, --events events written as fast as one
  producer can: deliveries/s (and events/s fully delivered) from the first commit to
  the last arrival.
- Latency: those endpoints deleted, --latency-endpoints subscribed, events paced at
  --rate for --seconds: commit to arrival, p50, p99 and max, first attempts only (the
  receiver never fails).
- Raw limit, in the same run and against the same receiver: plain HTTP POSTs/s from this
  process, a new connection each, one client and 16 threads.
- CPU per delivery, each phase: the Celery worker (fan-out and sending), PostgreSQL and
  this producer, in ms of CPU (psutil): what a delivery costs whatever else the machine
  runs, where wall-clock figures depend on it.

Prints a human summary, then one JSON line with every figure.
"""

import argparse
import asyncio
import http.client
import json
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as scripts/bench_webhooks.py

from bench import cpu_seconds, postgres_cpu  # scripts/bench.py, beside this file
from loadgen import percentiles_ms

from devtools.stack import Stack

EVENT_TYPE = "meter.offline"
RAW_SECONDS = 3.0
RAW_THREADS = 16
STACK_ENV = {
    "METERLINE_WEBHOOK_ALLOW_PRIVATE": "1",
    # Delivery threads of the Celery worker (the default is 16).
    "METERLINE_WEBHOOK_THREADS": os.environ.get("METERLINE_WEBHOOK_THREADS", "16"),
}


# --- The receiver (a process of its own) ------------------------------------------------


def receiver_main(ready) -> None:
    """Answer every POST with 200 at once and note (path, webhook-id, arrival); GET /dump
    hands the notes over and forgets them."""
    records: list[tuple[str, str, float]] = []

    async def handle(reader, writer) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                arrived = time.time()
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = dict(_header(line) for line in lines[1:] if ":" in line)
                await reader.readexactly(int(headers.get("content-length", 0)))
                body = b""
                if method == "GET" and path == "/dump":
                    body = json.dumps(records).encode()
                    records.clear()
                else:
                    records.append((path, headers.get("webhook-id", ""), arrived))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        ready.send(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(serve())


def _header(line: str) -> tuple[str, str]:
    name, value = line.split(":", 1)
    return name.strip().lower(), value.strip()


def receiver_dump(port: int) -> list[tuple[str, str, float]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/dump")
    records = json.loads(connection.getresponse().read())
    connection.close()
    return [tuple(record) for record in records]


def raw_posts_per_second(port: int, *, threads: int, seconds: float = RAW_SECONDS) -> float:
    """Plain POSTs of a webhook-sized body, a new connection each, from `threads` threads."""
    body = json.dumps({"type": EVENT_TYPE, "timestamp": "2026-12-01T00:00:00Z", "data": {}})
    counts = [0] * threads
    deadline = time.monotonic() + seconds

    def post(index: int) -> None:
        while time.monotonic() < deadline:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            headers = {"Content-Type": "application/json", "Connection": "close"}
            connection.request("POST", "/raw", body=body, headers=headers)
            connection.getresponse().read()
            connection.close()
            counts[index] += 1

    workers = [threading.Thread(target=post, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    receiver_dump(port)  # forget them
    return sum(counts) / seconds


# --- The producer (this process, on the stack's database and broker) ---------------------


def django_setup(stack: Stack) -> None:
    os.environ.update(
        DATABASE_URL=stack.database_url,
        REDIS_URL=stack.redis_url,
        SECRET_KEY=stack.app_env()["SECRET_KEY"],
        DJANGO_SETTINGS_MODULE="project.settings",
    )
    import django

    django.setup()


def events_write(account: str, count: int, *, rate: float | None) -> dict[str, float]:
    """`count` events, one transaction each, paced at `rate` a second (None: flat out);
    each event's id -> the wall-clock time its transaction committed."""
    from django.db import transaction

    from billing.outbox import event_record

    committed: dict[str, float] = {}
    started = time.monotonic()
    for n in range(count):
        if rate is not None:
            time.sleep(max(0.0, started + n / rate - time.monotonic()))
        with transaction.atomic():
            stamp: list[float] = []
            transaction.on_commit(lambda stamp=stamp: stamp.append(time.time()))
            event = event_record(
                type=EVENT_TYPE, account_id=account, data={"account": account, "n": n}, live=False
            )
        committed[event.public_id] = stamp[0]
    return committed


def endpoints_make(stack: Stack, port: int, count: int) -> list[str]:
    made = []
    for n in range(count):
        url = f"http://127.0.0.1:{port}/endpoint/{n}"
        body = {"url": url, "events": [EVENT_TYPE]}
        made.append(stack.api_ok("POST", "/api/v1/webhook-endpoints/", body, 201)["id"])
    return made


def endpoints_delete(stack: Stack, endpoint_ids: list[str]) -> None:
    for endpoint_id in endpoint_ids:
        stack.api_ok("DELETE", f"/api/v1/webhook-endpoints/{endpoint_id}/", expect=204)


def arrivals_wait(port: int, expected: int, timeout: float) -> list[tuple[str, str, float]]:
    """Collect the receiver's notes until `expected` requests came (or `timeout` passed)."""
    records: list[tuple[str, str, float]] = []
    deadline = time.monotonic() + timeout
    while len(records) < expected and time.monotonic() < deadline:
        time.sleep(0.5)
        records += receiver_dump(port)
    return records


# --- The phases ---------------------------------------------------------------------------


def cpu_now(stack: Stack) -> dict[str, float]:
    return {
        "celery": cpu_seconds(stack.process("celery").popen.pid),
        "postgres": postgres_cpu(stack),
        "producer": cpu_seconds(os.getpid()),
    }


def cpu_ms_per(before: dict[str, float], after: dict[str, float], count: int) -> dict:
    return {part: round((after[part] - before[part]) * 1000 / max(count, 1), 3) for part in after}


def throughput(stack: Stack, port: int, account: str, args: argparse.Namespace) -> dict:
    endpoints = endpoints_make(stack, port, args.endpoints)
    started, cpu = time.time(), cpu_now(stack)
    committed = events_write(account, args.events, rate=None)
    expected = args.events * args.endpoints
    records = arrivals_wait(port, expected, timeout=args.timeout)
    cpu = cpu_ms_per(cpu, cpu_now(stack), len(records))
    endpoints_delete(stack, endpoints)
    seconds = max(record[2] for record in records) - started if records else None
    pairs = {(path, webhook_id) for path, webhook_id, _ in records}
    return {
        "endpoints": args.endpoints,
        "events": args.events,
        "deliveries_expected": expected,
        "deliveries_received": len(records),
        "duplicates": len(records) - len(pairs),
        "unknown": len({webhook_id for _, webhook_id, _ in records} - set(committed)),
        "seconds": round(seconds, 2) if seconds else None,
        "deliveries_per_second": round(len(records) / seconds, 1) if seconds else None,
        "events_per_second": round(len(records) / args.endpoints / seconds, 2) if seconds else None,
        "cpu_ms_per_delivery": cpu,
    }


def latency(stack: Stack, port: int, account: str, args: argparse.Namespace) -> dict:
    endpoints = endpoints_make(stack, port, args.latency_endpoints)
    count = int(args.rate * args.seconds)
    started, cpu = time.monotonic(), cpu_now(stack)
    committed = events_write(account, count, rate=args.rate)
    achieved = count / (time.monotonic() - started)
    records = arrivals_wait(port, count * len(endpoints), timeout=args.timeout)
    cpu = cpu_ms_per(cpu, cpu_now(stack), len(records))
    endpoints_delete(stack, endpoints)
    waits = [at - committed[webhook_id] for _, webhook_id, at in records if webhook_id in committed]
    return {
        "endpoints": len(endpoints),
        "events": count,
        "rate_asked": args.rate,
        "rate_written": round(achieved, 1),
        "deliveries_received": len(records),
        "commit_to_receiver_ms": percentiles_ms(waits),
        "cpu_ms_per_delivery": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoints", type=int, default=100)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--latency-endpoints", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()

    here, there = multiprocessing.Pipe()
    receiver = multiprocessing.get_context("spawn").Process(
        target=receiver_main, args=(there,), daemon=True
    )
    receiver.start()
    port = here.recv()
    os.environ.update(STACK_ENV)
    stack = Stack(tmp=Path(tempfile.mkdtemp(prefix="meterline-bench-webhooks-")))
    try:
        stack.start()
        django_setup(stack)
        account = stack.create_account("bench-webhooks")
        raw = {
            "one_client": round(raw_posts_per_second(port, threads=1), 1),
            f"{RAW_THREADS}_threads": round(raw_posts_per_second(port, threads=RAW_THREADS), 1),
        }
        figures = {
            "raw_posts_per_second": raw,
            "throughput": throughput(stack, port, account, args),
            "latency": latency(stack, port, account, args),
        }
    finally:
        stack.stop()
        receiver.terminate()
    report(figures)


def report(figures: dict) -> None:
    raw, put, lat = figures["raw_posts_per_second"], figures["throughput"], figures["latency"]
    print(f"raw limit: plain POSTs/s to the receiver: {raw}; load {os.getloadavg()[0]:.1f}")
    print(
        f"throughput: {put['events']} events x {put['endpoints']} endpoints: "
        f"{put['deliveries_received']}/{put['deliveries_expected']} deliveries in "
        f"{put['seconds']} s = {put['deliveries_per_second']} deliveries/s, "
        f"{put['events_per_second']} events/s; duplicates {put['duplicates']}; "
        f"CPU ms a delivery {put['cpu_ms_per_delivery']}"
    )
    print(
        f"latency: {lat['events']} events at {lat['rate_written']}/s to {lat['endpoints']} "
        f"endpoint(s), {lat['deliveries_received']} received: commit to receiver "
        f"{lat['commit_to_receiver_ms']}; CPU ms a delivery {lat['cpu_ms_per_delivery']}"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
