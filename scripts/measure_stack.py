"""Start a live stack (Redis, PostgreSQL, daphne, 2 runworkers) and measure it with loadgen.

    .venv/bin/python scripts/measure_stack.py

Prints acked readings/s for batched frames (20 devices, 100 readings a frame,
4 frames in flight) and single-reading frames (50 devices, 8 in flight), each
with exact-total checking. The stack is the integration tests' own harness.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration.stack import make_stack  # noqa: E402

SCENARIOS = [
    ["--devices", "20", "--batch", "100", "--in-flight", "4"],
    ["--devices", "50", "--batch", "1", "--in-flight", "8"],
]


def main() -> None:
    seconds = sys.argv[1] if len(sys.argv) > 1 else "10"
    stack = make_stack()
    try:
        stack.start()
        for scenario in SCENARIOS:
            command = [
                sys.executable,
                str(ROOT / "scripts" / "loadgen.py"),
                "--url",
                stack.http_base,
                "--key",
                stack.operator_key,
                "--seconds",
                seconds,
                *scenario,
            ]
            subprocess.run(command, check=True)
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
