"""manage.py demo_setup: the demo account, tariff, meters and a user; prints how to sign in."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from web.demo import demo_account_ensure, demo_meters_ensure, demo_user_ensure


class Command(BaseCommand):
    help = "Create (or find) the demo account, tariff, meters and user; set a new demo password."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--meters", type=int, default=3)

    def handle(self, *args: Any, meters: int, **options: Any) -> None:
        account, tariff = demo_account_ensure()
        demo_meters_ensure(count=meters)
        username, password = demo_user_ensure(account=account)
        self.stdout.write(
            f"Demo account {account.id} ({account.currency}), tariff {tariff.id}, "
            f"{meters} meters.\n"
            f"Sign in at /login/ as  user: {username}  password: {password}"
        )
