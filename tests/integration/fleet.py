"""The fleet scenarios of scripts/fleet/ (`run(stack, ...) -> dict`), for their short
correctness versions here: imported by path, as scripts/bench_fleet.py imports them."""

import importlib.util
from pathlib import Path

FLEET = Path(__file__).resolve().parents[2] / "scripts" / "fleet"


def fleet_scenario(name: str):
    """scripts/fleet/<name>.py, imported."""
    spec = importlib.util.spec_from_file_location(f"fleet_{name}", FLEET / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
