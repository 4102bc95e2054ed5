"""manage.py create_api_key: a new operator API key, printed once as the last line of output."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from billing.account_services import operator_key_create


class Command(BaseCommand):
    help = "Create an operator API key. Only its hash is stored; the key is printed once, last."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="who or what the key is for")

    def handle(self, *args: Any, name: str, **options: Any) -> None:
        operator_key, key = operator_key_create(name=name)
        self.stderr.write(
            f"Created operator key {operator_key.name!r} (#{operator_key.pk}). "
            "Store it now: it cannot be shown again."
        )
        self.stdout.write(key)
