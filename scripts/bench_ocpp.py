"""OCPP 1.6-J charge points against the JSON device protocol, on one running Meterline:
MeterValues-to-CallResult latency and CPU per message beside reading-to-ack's.

    python scripts/bench_ocpp.py --url http://127.0.0.1:8000 --key <operator key> \
        --clients 500 --seconds 30
    python scripts/bench_ocpp.py --own-stack            # starts devtools/stack.py's stack

Two phases in one run, one after the other, each on an account of its own with one
per-unit tariff: `--clients` charge points (ocpp meters, an id tag, a StartTransaction
each, then one MeterValues a second each, its register 100 Wh higher every time), then
as many JSON devices (delta meters, one single-reading frame of 0.1 kWh a second
each). Both are raw clients of the wire protocols with the same cost on the client
side (one JSON frame out, one in), paced on a fixed schedule (open loop), each charge
point waiting for its answer before its next call as OCPP-J asks. Latency runs from a
frame's send to its answer (CallResult, ack). Afterwards each account's charged total
must be exactly what was answered: 0.1 kWh at 0.25 a message.

Output: "bench_ocpp: streaming <phase>" and "bench_ocpp: drained <phase>" around each
phase (the CPU of the stack's processes is sampled at these lines: scripts/bench.py's
way, done here with --own-stack), a human summary, and last a JSON line of figures.
"""

import argparse
import asyncio
import base64
import contextlib
import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as scripts/bench_ocpp.py
sys.path.insert(0, str(ROOT / "scripts"))

from loadgen import api, percentiles_ms  # scripts/loadgen.py, beside this file  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

UNIT_PRICE = Decimal("0.25")
STEP_WH = 100  # each MeterValues: the register 100 Wh (0.1 kWh) higher
STEP_KWH = Decimal(STEP_WH) / 1000
CONNECT_AT_ONCE = 50  # handshakes in flight while the clients connect
ANSWER_TIMEOUT = 30.0
PHASES = ("ocpp", "json")


def stamp() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Phase:
    name: str
    latencies: list[float] = field(default_factory=list)  # seconds, send to answer
    late: int = 0  # sends that could not keep their slot (the previous answer was late)
    unanswered: int = 0
    errors: list[str] = field(default_factory=list)


class Client:
    """One socket of either protocol: `exchange` sends a frame and waits for its answer."""

    def __init__(self, ws, match) -> None:
        self.ws, self.match = ws, match

    async def exchange(self, frame: dict | list, key: str) -> tuple[dict | list, float]:
        sent = time.perf_counter()
        await self.ws.send(json.dumps(frame))
        async with asyncio.timeout(ANSWER_TIMEOUT):
            while True:
                answer = json.loads(await self.ws.recv())
                if self.match(answer, key):
                    return answer, time.perf_counter() - sent


def ocpp_answer(answer, unique_id: str) -> bool:
    return isinstance(answer, list) and answer[1] == unique_id


def device_answer(answer, reading_id: str) -> bool:
    if answer.get("type") in ("error", "busy"):
        return reading_id in json.dumps(answer)
    return reading_id in [*answer.get("ids", ()), *answer.get("duplicates", ())]


# --- Provisioning, through the REST API ---------------------------------------------------


def provision(base: str, key: str, phase: str, count: int) -> tuple[str, list[tuple[str, str]]]:
    """An account with `count` meters of the phase's kind; [(charge point id or "", secret)]."""
    body = {"name": f"bench-ocpp-{phase}", "currency": "EUR", "timezone": "UTC"}
    account = api(base, key, "POST", "/api/v1/accounts/", body)["id"]
    tariff = {"name": "bench", "currency": "EUR", "unit": "kWh", "model": "per_unit"}
    tariff_id = api(base, key, "POST", "/api/v1/tariffs/", {**tariff, "unit_price": "0.25"})["id"]
    meters = []
    run = uuid.uuid4().hex[:6]
    for n in range(count):
        meter = {"account": account, "tariff": tariff_id, "name": f"{phase}-{n}"}
        if phase == "ocpp":
            meter |= {"kind": "ocpp", "charge_point_id": f"B{run}-{n}"}
        else:
            meter |= {"kind": "delta"}
        made = api(base, key, "POST", "/api/v1/meters/", meter)
        meters.append((meter.get("charge_point_id", ""), made["token"]))
    if phase == "ocpp":
        api(base, key, "POST", f"/api/v1/accounts/{account}/id-tags/", {"id_tag": "BENCH"})
    return account, meters


async def open_client(base: str, phase: str, cp_id: str, secret: str) -> Client:
    ws_base = base.replace("http://", "ws://").replace("https://", "wss://")
    if phase == "ocpp":
        basic = base64.b64encode(f"{cp_id}:{secret}".encode()).decode()
        ws = await connect(
            f"{ws_base}/ocpp/{cp_id}",
            subprotocols=["ocpp1.6"],
            additional_headers={"Authorization": f"Basic {basic}"},
            open_timeout=60,
        )
        return Client(ws, ocpp_answer)
    headers = {"Authorization": f"Bearer {secret}"}
    ws = await connect(f"{ws_base}/ws/meters/", additional_headers=headers, open_timeout=60)
    return Client(ws, device_answer)


async def start_transaction(client: Client) -> int:
    payload = {"connectorId": 1, "idTag": "BENCH", "meterStart": 0, "timestamp": stamp()}
    answer, _ = await client.exchange([2, "start", "StartTransaction", payload], "start")
    return answer[2]["transactionId"]


# --- One phase ----------------------------------------------------------------------------


async def paced(
    client: Client, phase: Phase, index: int, count: int, span: tuple[float, float], tx: int | None
):
    """One message a second from `start + index/count` on, until `end` (loop time)."""
    loop = asyncio.get_running_loop()
    start, end = span
    next_at, seq = start + index / count, 0
    while next_at < end:
        delay = next_at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.5:
            phase.late += 1
        seq += 1
        frame, key = message(phase.name, index, seq, tx)
        try:
            _, took = await client.exchange(frame, key)
        except (TimeoutError, OSError, ValueError) as error:
            phase.unanswered += 1
            phase.errors.append(repr(error)[:200])
            return
        phase.latencies.append(took)
        next_at += 1.0


def message(phase: str, index: int, seq: int, transaction: int | None) -> tuple[object, str]:
    if phase == "json":
        reading_id = f"j{index}-{seq}"
        reading = {"type": "reading", "id": reading_id, "ts": stamp(), "quantity": str(STEP_KWH)}
        return reading, reading_id
    sample = {"value": str(seq * STEP_WH), "measurand": "Energy.Active.Import.Register"}
    values = {"timestamp": stamp(), "sampledValue": [{**sample, "unit": "Wh"}]}
    payload = {"connectorId": 1, "transactionId": transaction, "meterValue": [values]}
    unique_id = f"m{seq}"
    return [2, unique_id, "MeterValues", payload], unique_id


async def run_phase(args, name: str) -> dict:
    base = args.url
    account, meters = provision(base, args.key, name, args.clients)
    clients: list[Client] = []
    for first in range(0, len(meters), CONNECT_AT_ONCE):
        chunk = meters[first : first + CONNECT_AT_ONCE]
        clients += await asyncio.gather(*(open_client(base, name, *m) for m in chunk))
    transactions: list[int | None] = [None] * len(clients)
    if name == "ocpp":  # a session each, started before the clock, a chunk at a time
        transactions = []
        for first in range(0, len(clients), CONNECT_AT_ONCE):
            chunk = clients[first : first + CONNECT_AT_ONCE]
            transactions += await asyncio.gather(*(start_transaction(c) for c in chunk))
    phase = Phase(name)
    loop = asyncio.get_running_loop()
    cpu_before = time.process_time()
    print(f"bench_ocpp: streaming {name}", flush=True)
    span = (loop.time(), loop.time() + args.seconds)
    await asyncio.gather(
        *(
            paced(client, phase, i, len(clients), span, tx)
            for i, (client, tx) in enumerate(zip(clients, transactions, strict=True))
        )
    )
    print(f"bench_ocpp: drained {name}", flush=True)
    wall = loop.time() - span[0]  # beyond --seconds when the stack could not keep up
    client_cpu = time.process_time() - cpu_before
    for client in clients:
        with contextlib.suppress(Exception):
            await client.ws.close()
    return figures(args, phase, account, client_cpu, wall)


def figures(args, phase: Phase, account: str, client_cpu: float, wall: float) -> dict:
    total = Decimal(api(args.url, args.key, "GET", f"/api/v1/accounts/{account}/usage/")["total"])
    expected = len(phase.latencies) * STEP_KWH * UNIT_PRICE
    return {
        "phase": phase.name,
        "clients": args.clients,
        "seconds": args.seconds,
        "answered": len(phase.latencies),
        "wall_s": round(wall, 1),
        "per_s": round(len(phase.latencies) / wall, 1),
        "latency_ms": percentiles_ms(phase.latencies),
        "late_sends": phase.late,
        "unanswered": phase.unanswered,
        "errors": phase.errors[:5],
        "charged": f"{total:f}",
        "exact": total == expected,
        "client_cpu_s": round(client_cpu, 3),
    }


async def load(args) -> list[dict]:
    results = []
    for name in args.phases:
        result = await run_phase(args, name)
        print(
            f"  {name}: {result['answered']} answered ({result['per_s']}/s over "
            f"{result['wall_s']} s, {result['late_sends']} sent late), "
            f"p50 {result['latency_ms']['p50']} ms, p99 {result['latency_ms']['p99']} ms, "
            f"charged {result['charged']} (exact: {result['exact']})",
            flush=True,
        )
        results.append(result)
    return results


# --- With a stack of its own (--own-stack): the CPU of each process, per message ----------


def own_stack(args) -> list[dict]:
    from bench import cpu_by_part, running_stack  # scripts/bench.py

    with running_stack(args.workers) as stack:
        command = [sys.executable, __file__, "--url", stack.http_base, "--key", stack.operator_key]
        command += ["--clients", str(args.clients), "--seconds", str(args.seconds)]
        command += ["--phases", *args.phases]
        marks: dict[str, dict] = {}
        results: list[dict] = []
        with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT) as load:
            for line in load.stdout:
                line = line.rstrip("\n")
                if line.startswith("bench_ocpp: streaming "):
                    marks[line.split()[-1]] = cpu_by_part(stack)
                elif line.startswith("bench_ocpp: drained "):
                    name, after = line.split()[-1], cpu_by_part(stack)
                    marks[name] = {part: after[part] - marks[name].get(part, 0) for part in after}
                elif line.startswith("["):
                    results = json.loads(line)
                else:
                    print(line, flush=True)
    if not results:
        raise SystemExit(f"bench_ocpp: the load process failed ({load.returncode})")
    for result in results:
        spent = marks[result["phase"]]
        result["cpu_ms_per_message"] = {
            part: round(seconds * 1000 / max(result["answered"], 1), 3)
            for part, seconds in {**spent, "client": result["client_cpu_s"]}.items()
        }
        server = sum(seconds for part, seconds in spent.items() if part != "celery")
        result["cpu_ms_per_message"]["server"] = round(
            server * 1000 / max(result["answered"], 1), 3
        )
    return results


def summary(results: list[dict]) -> None:
    """The figures side by side, as the README shows them."""
    parts = ("daphne", "workers", "postgres", "redis", "server")
    header = [
        "protocol",
        "messages/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        *(f"CPU ms/msg {p}" for p in parts),
    ]
    print("\n| " + " | ".join(header) + " |\n|" + " --- |" * len(header))
    for r in results:
        cpu = r.get("cpu_ms_per_message", {})
        latency = r["latency_ms"]
        row = [
            r["phase"],
            str(r["per_s"]),
            str(latency["p50"]),
            str(latency["p99"]),
            str(latency["max"]),
        ]
        print("| " + " | ".join(row + [str(cpu.get(p, "n/a")) for p in parts]) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running Meterline (else --own-stack)")
    parser.add_argument("--key", help="its operator key")
    parser.add_argument("--own-stack", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--phases", nargs="+", choices=PHASES, default=list(PHASES))
    args = parser.parse_args()
    if args.own_stack:
        results = own_stack(args)
        summary(results)
    elif args.url and args.key:
        results = asyncio.run(load(args))
    else:
        parser.error("give --url and --key, or --own-stack")
    print(json.dumps(results), flush=True)
    ok = all(r["exact"] and not r["unanswered"] for r in results)
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
