"""When a signed-in user's open dashboards must look at their access again: the user signs
out of a session, is changed (deactivated, a new password, other permissions) or loses a
membership. Django tells these as signals (the admin and `manage.py` make the changes, not
our services); each receiver hands on to billing/account_services.py, which tells the
user's dashboards once the change commits (metering/consumers/dashboards.py).
"""

from typing import Any

from django.contrib.auth import get_user_model, user_logged_out
from django.db.models.signals import m2m_changed, post_delete, post_save

from billing.account_services import user_dashboards_recheck
from billing.keys import secret_hash
from billing.models import AccountMember

# What a sign-in saves about the user, and nothing their access depends on.
SIGN_IN_FIELDS = frozenset({"last_login"})


def _signed_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    session_key = request.session.session_key if request is not None else None
    if user is not None and session_key:
        user_dashboards_recheck(user_id=user.pk, ended_session=secret_hash(session_key))


def _user_saved(sender: Any, instance: Any, update_fields: Any = None, **kwargs: Any) -> None:
    if kwargs.get("created") or (update_fields and set(update_fields) <= SIGN_IN_FIELDS):
        return
    user_dashboards_recheck(user_id=instance.pk)


def _user_permissions_changed(sender: Any, instance: Any, action: str, **kwargs: Any) -> None:
    # Only taking away can close a dashboard; `reverse`: a group or permission's side,
    # whose users the signal does not name.
    if action in ("post_remove", "post_clear") and not kwargs["reverse"]:
        user_dashboards_recheck(user_id=instance.pk)


def _membership_deleted(sender: Any, instance: AccountMember, **kwargs: Any) -> None:
    user_dashboards_recheck(user_id=instance.user_id)


def revocation_signals_connect() -> None:
    user_model = get_user_model()
    user_logged_out.connect(_signed_out, dispatch_uid="meterline-signed-out")
    post_save.connect(_user_saved, sender=user_model, dispatch_uid="meterline-user-saved")
    post_delete.connect(
        _membership_deleted, sender=AccountMember, dispatch_uid="meterline-membership-deleted"
    )
    for through in (user_model.groups.through, user_model.user_permissions.through):
        m2m_changed.connect(
            _user_permissions_changed, sender=through, dispatch_uid=f"meterline-{through}"
        )
