"""manage.py revoke_api_key: revoke operator API keys by number or by name.

The API refuses a revoked key from its next request, and the dashboards open with it are
closed with 4401 (billing/account_services.py). The admin's operator keys page does the same.
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q
from django.utils import timezone

from billing.account_services import operator_keys_revoke
from billing.models import OperatorKey


class Command(BaseCommand):
    help = "Revoke operator API keys: by their number (#N, printed by create_api_key) or --name."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("numbers", nargs="*", type=int, help="the keys' numbers")
        parser.add_argument(
            "--name", action="append", default=[], help="every key of this name (repeatable)"
        )

    def handle(self, *args: Any, numbers: list[int], name: list[str], **options: Any) -> None:
        if not numbers and not name:
            raise CommandError("Name the keys to revoke: their numbers, or --name.")
        keys = OperatorKey.objects.filter(Q(pk__in=numbers) | Q(name__in=name))
        count = operator_keys_revoke(keys=keys, at=timezone.now())
        self.stdout.write(f"Revoked {count} operator key(s).")
