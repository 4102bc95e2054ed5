"""manage.py simulate: stream readings from demo meters to a running Meterline over WebSockets."""

import asyncio
import contextlib
import logging
import os
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from clients.device import meters_url
from web.demo import demo_meter_tokens
from web.simulator import simulate


class Command(BaseCommand):
    help = "Simulate N demo meters, each sending R readings a second, until Ctrl-C."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--meters", type=int, default=3)
        parser.add_argument("--rate", type=float, default=1.0, help="readings a second per meter")
        parser.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('PORT', '8000')}")

    def handle(self, *args: Any, meters: int, rate: float, url: str, **options: Any) -> None:
        for name in ("web.simulator", "clients.device"):
            logging.getLogger(name).setLevel(logging.INFO)
        tokens = demo_meter_tokens(count=meters)
        self.stdout.write(f"Simulating {len(tokens)} meters at {rate}/s each against {url}")
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(simulate(tokens=tokens, url=meters_url(url), rate=rate))
