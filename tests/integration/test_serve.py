"""`make serve` as an operator runs it: supervisord, two daphne processes on one port.

scripts/serve runs deploy/supervisord.conf against this module's own Redis and
PostgreSQL, with LOG_FORMAT=json. Thirty devices stream through the shared
port (the kernel spreads them over both daphne processes), one daphne is
killed mid-stream and supervisord starts another: every reading is acked and
charged once, /metrics counts exactly what was charged, the killed process's
idle meter goes offline by itself. A daphne stopped with SIGTERM closes its
sockets with 1012. Every log line is JSON and holds no secret, and SIGTERM
of serve leaves no process behind. The tests run in file order.
"""

import asyncio
import json
import signal
import time
from decimal import Decimal

import psutil
import pytest
from websockets.exceptions import ConnectionClosed

from devtools.stack import REPO_ROOT, free_port, http_json, wait_for
from tests.integration.stack import (
    StreamStats,
    assert_charged_once,
    connect_dashboard,
    connect_device,
    make_stack,
    recv_json,
    stream,
)

pytestmark = pytest.mark.integration

DEVICES = 30
READINGS_PER_DEVICE = 400
IDLE_DEVICES = 6
UNIT_PRICE = Decimal("0.01")
OFFLINE_WITHIN = 30.0  # CONTRACT.md section 9


@pytest.fixture(scope="module")
def served():
    stack = make_stack()
    stack.start_redis()
    stack.start_postgres()
    stack.http_port = free_port()
    env = stack.app_env() | {
        "PORT": str(stack.http_port),
        "BIND": "127.0.0.1",
        "WEB_PROCESSES": "2",
        "WORKERS": "2",
        "METERLINE_RUN_DIR": str(stack.tmp / "serve"),
        "LOG_FORMAT": "json",
    }
    stack.spawn("serve", [str(REPO_ROOT / "scripts" / "serve")], env=env)
    try:
        stack.wait_healthy(workers=2, timeout=90)
        stack.operator_key = stack.manage("create_api_key", "serve").stdout.split()[-1]
        stack.secrets.add(stack.operator_key)
        yield stack
    finally:
        stack.stop()


def supervisord(stack) -> psutil.Process:
    return psutil.Process(stack.process("serve").popen.pid)


def daphnes(stack) -> list[psutil.Process]:
    return [
        p
        for p in supervisord(stack).children()
        if any("daphne" in part for part in p.cmdline()[:2])
    ]


def server_pid_of(stack, ws) -> int | None:
    """The daphne process holding this client connection (matched by the client's port)."""
    client_port = ws.local_address[1]
    for daphne in daphnes(stack):
        for conn in daphne.net_connections(kind="tcp"):
            if conn.raddr and conn.raddr.port == client_port:
                return daphne.pid
    return None


def metric(stack, name: str, labels: str) -> float:
    status, text = http_json("GET", f"{stack.http_base}/metrics", token=stack.operator_key)
    assert status == 200, text
    for line in text.splitlines():
        if line.startswith(f"{name}{{{labels}}} "):
            return float(line.split()[-1])
    raise AssertionError(f"{name}{{{labels}}} not in /metrics")


def test_two_daphne_share_one_port(served):
    processes = daphnes(served)
    assert len(processes) == 2
    for daphne in processes:
        assert "--fd" in daphne.cmdline() and "--proxy-headers" in daphne.cmdline()
        listening = [
            c
            for c in daphne.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == served.http_port
        ]
        assert listening, f"daphne {daphne.pid} does not hold the shared socket"


async def test_a_killed_daphne_loses_nothing_and_its_meters_go_offline(served):
    stack = served
    p = stack.provision(meters=DEVICES + IDLE_DEVICES, model="per_unit", unit_price=str(UNIT_PRICE))
    streaming, idle = p.tokens[:DEVICES], p.tokens[DEVICES:]
    idle_ids = p.meters[DEVICES:]
    stats = [StreamStats() for _ in streaming]
    started = time.monotonic()
    streams = [
        asyncio.create_task(
            stream(stack, token, f"{meter}-{started}", s, count=READINGS_PER_DEVICE, pace=0.05)
        )
        for meter, token, s in zip(p.meters[:DEVICES], streaming, stats, strict=True)
    ]
    idle_sockets = [await connect_device(stack, token).__aenter__() for token in idle]
    try:
        while sum(len(s.acked) for s in stats) < DEVICES * READINGS_PER_DEVICE // 5:
            await asyncio.sleep(0.05)
            assert not any(t.done() and t.exception() for t in streams)
        # The kernel spread the connections over both processes.
        per_process = {d.pid: 0 for d in daphnes(stack)}
        for daphne in daphnes(stack):
            per_process[daphne.pid] = sum(
                1
                for c in daphne.net_connections(kind="tcp")
                if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == stack.http_port
            )
        print(f"\nconnections per daphne process: {per_process}")
        assert all(per_process.values()), per_process
        holders = {
            meter: server_pid_of(stack, ws)
            for meter, ws in zip(idle_ids, idle_sockets, strict=True)
        }
        victim = max(per_process, key=lambda pid: sum(h == pid for h in holders.values()))
        orphaned = [meter for meter, pid in holders.items() if pid == victim]
        assert orphaned, f"no idle device on daphne {victim}: {holders}"
        psutil.Process(victim).send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        await asyncio.gather(*streams)
    finally:
        for ws in idle_sockets:
            await ws.close()

    # supervisord started a new daphne in its place.
    wait_for(
        lambda: len(daphnes(stack)) == 2 and victim not in {d.pid for d in daphnes(stack)},
        timeout=30,
        what="supervisord to restart the killed daphne",
    )
    charges = assert_charged_once(
        stack, p.account, stats, per_device=READINGS_PER_DEVICE, unit_price=UNIT_PRICE
    )

    # Exactly what was charged; resends of committed readings counted as duplicates.
    assert metric(stack, "meterline_readings_total", 'outcome="charged"') == len(charges)
    # No more: the layer hands each batch to one worker (tests/integration/test_layer_delivery.py).
    resent = sum(s.resent for s in stats)
    duplicates = metric(stack, "meterline_readings_total", 'outcome="duplicate"')
    reconnects = sum(s.reconnects for s in stats)
    print(f"devices resent {resent} readings, {duplicates:.0f} duplicates, {reconnects} reconnects")
    assert duplicates <= resent

    # The idle meters the killed process held: offline without anyone saying goodbye.
    async def offline() -> set[str]:
        async with connect_dashboard(stack, p.account, stack.operator_key) as dashboard:
            snapshot = await recv_json(dashboard)
        return {m["id"] for m in snapshot["meters"] if not m["online"]}

    while not set(orphaned) <= await offline():
        assert time.monotonic() - killed_at < OFFLINE_WITHIN, "meters still online"
        await asyncio.sleep(1)
    print(f"orphaned meters offline {time.monotonic() - killed_at:.1f} s after the kill")


def test_metrics_need_the_operator_key(served):
    status, _ = http_json("GET", f"{served.http_base}/metrics")
    assert status == 401
    status, _ = http_json("GET", f"{served.http_base}/metrics", token="wrong")
    assert status == 401


async def test_a_stopped_daphne_closes_its_sockets_with_1012(served):
    stack = served
    p = stack.provision(meters=8)
    sockets = [await connect_device(stack, token).__aenter__() for token in p.tokens]
    try:
        holders = [server_pid_of(stack, ws) for ws in sockets]
        victim = holders[0]
        psutil.Process(victim).send_signal(signal.SIGTERM)
        for ws, holder in zip(sockets, holders, strict=True):
            if holder != victim:
                continue
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        others = [ws for ws, h in zip(sockets, holders, strict=True) if h != victim]
        assert all(ws.state.name == "OPEN" for ws in others)
    finally:
        for ws in sockets:
            await ws.close()
    wait_for(lambda: len(daphnes(stack)) == 2, timeout=30, what="the stopped daphne back")


def test_every_log_line_is_json_and_holds_no_secret(served):
    logs = sorted((served.tmp / "serve" / "logs").glob("*.log"))
    programs = {log.name.split("-")[0].removesuffix(".log") for log in logs}
    assert {"web", "worker", "celery", "beat"} <= programs, programs
    for log in logs:
        if log.name == "supervisord.log":  # supervisord's own lines, not Meterline's
            continue
        text = log.read_text()
        for number, line in enumerate(text.splitlines(), 1):
            record = json.loads(line)  # raises on the first line that is not JSON
            assert {"time", "level", "logger", "role"} <= record.keys(), (log.name, number)
        for secret in served.secrets:
            assert secret not in text, f"a secret in {log.name}"


def test_sigterm_stops_every_process(served):
    serve = served.process("serve")
    tree = [supervisord(served), *supervisord(served).children(recursive=True)]
    started = time.monotonic()
    serve.popen.send_signal(signal.SIGTERM)
    serve.popen.wait(timeout=30)
    took = time.monotonic() - started
    _, alive = psutil.wait_procs(tree, timeout=1)
    assert alive == [], f"left behind: {[p.cmdline() for p in alive]}"
    print(f"\nmake serve stopped {len(tree)} processes in {took:.1f} s")
