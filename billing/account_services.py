"""Writes of the operator API on accounts and on the keys that read or manage them.

A dashboard that must end (its key revoked, its user signed out, deactivated or no longer
a member) is told through the channel-layer group of the credential it came with, after
the change commits, so that its reconnect already sees the new state: a revoked key's
dashboards are closed with 4401, a user's dashboards look at their access again.
"""

from datetime import datetime
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.db.models import QuerySet

from billing.keys import new_secret, secret_hash
from billing.models import Account, DashboardKey, OperatorKey
from protocol import CLOSE_UNAUTHENTICATED, dashboard_key_group, operator_key_group, user_group


def account_create(*, name: str, currency: str, timezone: str) -> Account:
    return Account.objects.create(name=name, currency=currency, timezone=timezone)


def dashboard_key_create(*, account: Account) -> tuple[DashboardKey, str]:
    """A new read-only key for the account's dashboard; returns the stored record and the
    key, shown only once."""
    key = new_secret("dbk")
    dashboard_key = DashboardKey.objects.create(account=account, key_hash=secret_hash(key))
    return dashboard_key, key


@transaction.atomic
def dashboard_key_revoke(*, key: DashboardKey, at: datetime) -> DashboardKey:
    """Revoke the key from `at` (a key revoked before keeps its time): it opens no dashboard
    from now on, and the open ones close with 4401 once committed."""
    DashboardKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=at)
    # Told again for a key revoked before: a close that was lost is not lost twice.
    _dashboards_tell([dashboard_key_group(key.pk)], _revoked())
    return DashboardKey.objects.get(pk=key.pk)


def operator_key_create(*, name: str) -> tuple[OperatorKey, str]:
    """A new operator API key; returns the stored record and the key, shown only once."""
    key = new_secret("opk")
    operator_key = OperatorKey.objects.create(name=name, key_hash=secret_hash(key))
    return operator_key, key


@transaction.atomic
def operator_keys_revoke(*, keys: QuerySet[OperatorKey], at: datetime) -> int:
    """Revoke the keys not yet revoked, from `at`: the API refuses them from the next request,
    and dashboards open with them close with 4401 once committed."""
    ids = list(keys.filter(revoked_at__isnull=True).values_list("pk", flat=True))
    OperatorKey.objects.filter(pk__in=ids).update(revoked_at=at)
    _dashboards_tell([operator_key_group(pk) for pk in ids], _revoked())
    return len(ids)


def user_dashboards_recheck(*, user_id: int, ended_session: str | None = None) -> None:
    """The user's dashboards look at their access again once committed (a membership gone,
    the user deactivated or their password changed). `ended_session`, the hash of a session
    key (billing.keys.secret_hash): the dashboards of that session close with 4401."""
    message: dict[str, Any] = {"type": "dashboard.recheck"}
    if ended_session is not None:
        message["ended_session"] = ended_session
    _dashboards_tell([user_group(user_id)], message)


def _revoked() -> dict[str, Any]:
    return {"type": "dashboard.revoked", "code": CLOSE_UNAUTHENTICATED}


def _dashboards_tell(groups: list[str], message: dict[str, Any]) -> None:
    def tell() -> None:
        send = async_to_sync(get_channel_layer().group_send)
        for group in groups:
            send(group, message)

    # robust: a channel layer that is down must not fail a change already committed.
    transaction.on_commit(tell, robust=True)
