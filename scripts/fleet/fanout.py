"""Fleet scenario: a thousand dashboards on one account, and one on each of 500 others.

    run(stack, seconds=30) -> dict        (scripts/bench_fleet.py calls it)

The popular account has POPULAR_DASHBOARDS dashboards open (over KEYS dashboard keys,
within the per-credential cap of a web process) and one meter sending frames of
POPULAR_BATCH readings, POPULAR_FRAMES_PER_S a second; each of OTHERS accounts has one
dashboard and one meter sending a reading a second. That is 1,000 charges/s in all,
half of them on the popular account, whose every charge event goes to a thousand
sockets. Figures: charge-to-dashboard latency (from the send of the oldest reading an
event shows to its arrival at each dashboard) for the popular account and the others,
p99 goal 250 ms; every dashboard must see every charge event in order, none missing, none
twice, no mid-stream snapshot; every reading acked and charged once.
"""

from __future__ import annotations

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
    totals_wrong,
)

POPULAR_DASHBOARDS, KEYS = 1000, 20
POPULAR_BATCH, POPULAR_FRAMES_PER_S = 50, 10  # 500 charges/s
OTHERS = 500  # a reading a second each: 500 charges/s
OTHER_CLIENTS = 1
GOALS = {
    "popular.dashboard_ms.p99": ("<=", 250.0),
    "others.dashboard_ms.p99": ("<=", 250.0),
}

_crowds: dict[int, tuple[Crowd, Crowd]] = {}  # per stack: made once, reused by later runs


def run(
    stack,
    *,
    seconds: float = 30.0,
    dashboards: int = POPULAR_DASHBOARDS,
    others: int = OTHERS,
    hooks: dict | None = None,
) -> dict:
    """The scenario's figures; `hooks` as crowd_run's."""
    popular, others = _crowds_of(stack, others)
    popular.runs += 1
    run_id = f"f{popular.runs}"
    url = stack.http_base
    shape = {"batch": POPULAR_BATCH, "interval": 1 / POPULAR_FRAMES_PER_S}
    plans = crowd_plans(
        popular.accounts, url=url, run=run_id, shape=shape, dashboards=dashboards, clients=1
    )
    shape = {"batch": 1, "interval": 1.0}
    plans += crowd_plans(
        others.accounts, url=url, run=run_id, shape=shape, dashboards=1, clients=OTHER_CLIENTS
    )
    settled = crowd_settled(stack)  # the last run's sockets are gone
    results, cpu = crowd_run(plans, seconds=seconds, hooks=hooks)
    crowd_acked(popular, results)
    crowd_acked(others, results)
    mine = {account.id for account in popular.accounts}
    hot = [result for result in results if result["id"] in mine]
    rest = [result for result in results if result["id"] not in mine]
    problems = crowd_problems(results) + totals_wrong(stack, popular.accounts + others.accounts)
    hot_figures, rest_figures = crowd_figures(hot, seconds), crowd_figures(rest, seconds)
    return {
        "charges_per_s": round(hot_figures["readings_per_s"] + rest_figures["readings_per_s"], 1),
        "popular": hot_figures,
        "others": rest_figures,
        "client_cpu_s": round(cpu, 1),
        "settle_s": settled,
        "problems": problems,
        "ok": not problems,
    }


def _crowds_of(stack, others: int) -> tuple[Crowd, Crowd]:
    if id(stack) not in _crowds:
        popular = crowd_provision(stack, accounts=1, meters=1, keys=KEYS)
        others = crowd_provision(stack, accounts=others, meters=1, keys=1)
        _crowds[id(stack)] = (popular, others)
    return _crowds[id(stack)]
