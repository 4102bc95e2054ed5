"""manage.py simulate: stream readings from demo meters, and charge sessions from demo EV
charge points (OCPP 1.6-J), to a running Meterline over WebSockets."""

import asyncio
import contextlib
import logging
import os
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from clients.device import meters_url
from web.demo import demo_meter_tokens
from web.demo_charging import DEMO_ID_TAG, demo_charge_point_passwords
from web.simulator import simulate


class Command(BaseCommand):
    help = (
        "Simulate N demo meters, each sending R readings a second, and C demo charge points "
        "charging session after session, until Ctrl-C."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--meters", type=int, default=3)
        parser.add_argument("--rate", type=float, default=1.0, help="readings a second per meter")
        parser.add_argument(
            "--charge-points", type=int, default=1, help="EV charge points speaking OCPP 1.6-J"
        )
        parser.add_argument(
            "--session-seconds", type=float, default=120.0, help="how long a session charges"
        )
        parser.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('PORT', '8000')}")

    def handle(self, *args: Any, meters: int, rate: float, url: str, **options: Any) -> None:
        for name in ("web.simulator", "clients.device"):
            logging.getLogger(name).setLevel(logging.INFO)
        logging.getLogger("ocpp").setLevel(logging.WARNING)  # it logs every message at INFO
        tokens = demo_meter_tokens(count=meters)
        passwords = demo_charge_point_passwords(count=options["charge_points"])
        self.stdout.write(
            f"Simulating {len(tokens)} meters at {rate}/s each and {len(passwords)} charge "
            f"points (id tag {DEMO_ID_TAG}) against {url}"
        )
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(
                simulate(
                    tokens=tokens,
                    url=meters_url(url),
                    rate=rate,
                    base=url,
                    charge_points=passwords,
                    id_tag=DEMO_ID_TAG,
                    session_seconds=options["session_seconds"],
                )
            )
