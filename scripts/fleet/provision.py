"""Fleet provisioning for the fleet scenarios: accounts, a tariff and thousands of delta meters.

Each account, its tariff and its first meter are made through the operator API, as
any client would make them; the account's other meters are copies of the first made
in one bulk insert by a Django process against the same database (the API makes about
25 meters a second here, and 10,000 would take the scenario's whole budget). The
copies differ only in name and token, so they are rated exactly as the first.

    fleet = fleet_provision(api=..., env=stack.app_env(), accounts=10, meters=1000)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
UNIT_PRICE = "0.25"  # per kWh; each reading of the scenarios is 1 kWh

# api(method, path, body) -> the answer's JSON (it raises on anything but 2xx).
Api = Callable[[str, str, dict | None], Any]


@dataclass
class FleetMeter:
    account: str
    meter: str
    token: str


@dataclass
class Fleet:
    accounts: list[str] = field(default_factory=list)
    meters: list[FleetMeter] = field(default_factory=list)


def fleet_provision(*, api: Api, env: dict[str, str], accounts: int, meters: int) -> Fleet:
    """`accounts` accounts of `meters` meters each (per-unit tariff, UNIT_PRICE a kWh);
    `env` points a Django process at the stack's database (Stack.app_env())."""
    fleet = Fleet()
    plan = []
    for number in range(accounts):
        body = {"name": f"fleet-{number}", "currency": "EUR", "timezone": "UTC"}
        account = api("POST", "/api/v1/accounts/", body)["id"]
        tariff = api("POST", "/api/v1/tariffs/", _tariff(number))["id"]
        first = api("POST", "/api/v1/meters/", _meter(account, tariff, "m0"))
        fleet.accounts.append(account)
        fleet.meters.append(FleetMeter(account, first["id"], first["token"]))
        plan.append({"account": account, "like": first["id"], "copies": meters - 1})
    for copy in _bulk_copies(plan, env):
        fleet.meters.append(FleetMeter(copy["account"], copy["meter"], copy["token"]))
    return fleet


def _tariff(number: int) -> dict:
    return {
        "name": f"fleet-{number}",
        "currency": "EUR",
        "unit": "kWh",
        "billing_period": "month",
        "model": "per_unit",
        "unit_price": UNIT_PRICE,
    }


def _meter(account: str, tariff: str, name: str) -> dict:
    return {"account": account, "tariff": tariff, "name": name, "kind": "delta"}


def _bulk_copies(plan: list[dict], env: dict[str, str]) -> list[dict]:
    if not any(item["copies"] for item in plan):
        return []
    result = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--copies"],
        input=json.dumps(plan),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"bulk meter copies failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout)


def meter_copies_create(plan: list[dict]) -> list[dict]:
    """In a Django process: for each {"account", "like", "copies"}, that many meters like
    the meter `like` (same account, kind and tariff), each with a token of its own."""
    from django.db import transaction

    from billing.keys import new_secret, secret_hash
    from metering.models import Meter, MeterTariff

    made = []
    with transaction.atomic():
        for item in plan:
            like = Meter.objects.get(pk=item["like"])
            tariff = MeterTariff.objects.filter(meter=like).latest("effective_from")
            tokens = [new_secret("mtk") for _ in range(item["copies"])]
            meters = Meter.objects.bulk_create(
                Meter(
                    account_id=like.account_id,
                    name=f"m{n + 1}",
                    kind=like.kind,
                    token_hash=secret_hash(token),
                )
                for n, token in enumerate(tokens)
            )
            MeterTariff.objects.bulk_create(
                MeterTariff(meter=m, tariff_id=tariff.tariff_id, effective_from=m.created_at)
                for m in meters
            )
            made += [
                {"account": like.account_id, "meter": meter.id, "token": token}
                for meter, token in zip(meters, tokens, strict=True)
            ]
    return made


def _main() -> None:
    sys.path.insert(0, str(REPO_ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    json.dump(meter_copies_create(json.load(sys.stdin)), sys.stdout)


if __name__ == "__main__" and sys.argv[1:] == ["--copies"]:
    _main()
