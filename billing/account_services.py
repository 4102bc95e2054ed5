"""Writes of the operator API on accounts and on the keys that read or manage them."""

from datetime import datetime

from django.db.models import QuerySet

from billing.keys import new_secret, secret_hash
from billing.models import Account, DashboardKey, OperatorKey


def account_create(*, name: str, currency: str, timezone: str) -> Account:
    return Account.objects.create(name=name, currency=currency, timezone=timezone)


def dashboard_key_create(*, account: Account) -> str:
    """A new read-only key for the account's dashboard; returns the key, shown only once."""
    key = new_secret("dbk")
    DashboardKey.objects.create(account=account, key_hash=secret_hash(key))
    return key


def operator_key_create(*, name: str) -> tuple[OperatorKey, str]:
    """A new operator API key; returns the stored record and the key, shown only once."""
    key = new_secret("opk")
    operator_key = OperatorKey.objects.create(name=name, key_hash=secret_hash(key))
    return operator_key, key


def operator_keys_revoke(*, keys: QuerySet[OperatorKey], at: datetime) -> int:
    """Revoke the keys not yet revoked, from `at`; the API refuses them from the next request."""
    return keys.filter(revoked_at__isnull=True).update(revoked_at=at)
