"""Fleet scenario: hundreds of accounts streaming at once (issue 18).

    run(stack, seconds=30) -> dict        (scripts/bench_fleet.py calls it)

500 accounts x 4 delta meters, every device a WebSocket sending single-reading frames,
with the stack's 2 rating workers, in three phases on the same stack:

1. single: one account of 50 meters, 8 frames in flight each, closed loop (the shape of
   `make bench`'s single-reading figure): the single-account readings/s of this run;
2. accounts: the 2,000 devices of the 500 accounts, a frame in flight each, closed loop:
   the aggregate readings/s (goal: at least the single-account figure);
3. paced: the 2,000 devices at 2,000 readings/s in all (a reading a second each), or at
   PACED_SHARE of phase 2's capacity when that is less, with one dashboard per account:
   ack and dashboard p99 (goals 100 and 150 ms), and fairness: the slowest account's ack
   p99 over the median account's (goal at most 2).

Every phase checks that every reading was acked and charged once (each account's total
is its acked readings' price, to the cent) and that every dashboard saw every charge
event, in order, none twice. The client runs in CLIENTS processes of its own on the same
machine; its CPU is reported beside the figures.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from crowd import (
    Crowd,
    crowd_acked,
    crowd_figures,
    crowd_plans,
    crowd_problems,
    crowd_provision,
    crowd_run,
    crowd_settled,
    hist_quantiles,
    totals_wrong,
)

ACCOUNTS, METERS = 500, 4
SINGLE_METERS, SINGLE_IN_FLIGHT = 50, 8
PACED_RATE = 2000.0  # readings/s of all devices
PACED_SHARE = 0.5  # of the accounts' capacity, when PACED_RATE is beyond it
CLIENTS = 2
GOALS = {
    "accounts_over_single": (">=", 1.0),
    "paced.ack_ms.p99": ("<=", 100.0),
    "paced.dashboard_ms.p99": ("<=", 150.0),
    "paced.fairness": ("<=", 2.0),
}

_crowds: dict[int, tuple[Crowd, Crowd]] = {}  # per stack: made once, reused by later runs


def run(stack, *, seconds: float = 30.0, accounts: int = ACCOUNTS, meters: int = METERS) -> dict:
    single, many = _crowds_of(stack, accounts, meters)
    many.runs += 1
    run_id = f"a{many.runs}"
    short = max(2.0, seconds / 3)
    solo = _phase(
        stack, single, f"{run_id}s", {"batch": 1, "in_flight": SINGLE_IN_FLIGHT}, 0, short
    )
    closed = _phase(stack, many, f"{run_id}c", {"batch": 1, "in_flight": 1}, 0, short)
    capacity = closed["readings_per_s"]
    rate = min(PACED_RATE, PACED_SHARE * capacity)
    interval = accounts * meters / rate
    paced = _phase(stack, many, f"{run_id}p", {"batch": 1, "interval": interval}, 1, seconds)
    paced |= {"rate": round(rate, 1), "share_of_capacity": round(rate / capacity, 2)}
    problems = [
        f"{name}: {problem}"
        for name, phase in (("single", solo), ("accounts", closed), ("paced", paced))
        for problem in phase.pop("problems")
    ]
    return {
        "single": solo,
        "accounts": closed,
        "accounts_over_single": round(capacity / solo["readings_per_s"], 2),
        "paced": paced,
        "problems": problems,
        "ok": not problems,
    }


def _crowds_of(stack, accounts: int, meters: int) -> tuple[Crowd, Crowd]:
    if id(stack) not in _crowds:
        single = crowd_provision(stack, accounts=1, meters=SINGLE_METERS, keys=1)
        many = crowd_provision(stack, accounts=accounts, meters=meters, keys=1)
        _crowds[id(stack)] = (single, many)
    return _crowds[id(stack)]


def _phase(stack, crowd: Crowd, run_id: str, shape: dict, dashboards: int, seconds: float):
    """One phase: its figures, with "problems" (and, paced, fairness across accounts)."""
    plans = crowd_plans(
        crowd.accounts,
        url=stack.http_base,
        run=run_id,
        shape=shape,
        dashboards=dashboards,
        clients=CLIENTS if len(crowd.accounts) > 1 else 1,
    )
    crowd_settled(stack)  # the last phase's sockets are gone
    results, cpu = crowd_run(plans, seconds=seconds)
    crowd_acked(crowd, results)
    figures = crowd_figures(results, seconds) | {"client_cpu_s": round(cpu, 1)}
    figures["problems"] = crowd_problems(results) + totals_wrong(stack, crowd.accounts)
    if len(results) > 1:
        figures |= _fairness(results)
    return figures


def _fairness(results: list[dict]) -> dict:
    """The slowest account's ack p99 over the median account's."""
    p99s = sorted(hist_quantiles(result["ack_ms"])["p99"] or 0.0 for result in results)
    median = statistics.median(p99s)
    return {
        "account_ack_p99_ms": {"median": median, "slowest": p99s[-1]},
        "fairness": round(p99s[-1] / median, 2) if median else None,
    }
