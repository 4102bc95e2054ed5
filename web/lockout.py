"""Sign-in lockout, for the sign-in page and the admin's alike (both call authenticate()).

After METERLINE_LOGIN_FAILURES failed sign-ins for one user name (whatever its case, known
or not) from one client address, or METERLINE_LOGIN_FAILURES_PER_ADDRESS from one address
whatever the names (guessing across many names), sign-ins for them are refused, the right
password too, until METERLINE_LOGIN_LOCKOUT_SECONDS after the first of those failures. A
success forgets the name's failures. The counts live in Django's cache: Redis in every
deployment (project/settings.py), so that every web process sees them.
"""

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from billing.keys import secret_hash


def _counters(request: HttpRequest | None, username: str) -> list[tuple[str, int]]:
    """The failure counters one attempt is looked up and counted in, each with its limit."""
    # REMOTE_ADDR: behind nginx, daphne --proxy-headers puts the client's address there.
    address = request.META.get("REMOTE_ADDR", "") if request is not None else ""
    name = username.casefold()
    return [
        (f"sign-in-failures:{secret_hash(f'{address} {name}')}", settings.METERLINE_LOGIN_FAILURES),
        (f"sign-in-failures:{secret_hash(address)}", settings.METERLINE_LOGIN_FAILURES_PER_ADDRESS),
    ]


def sign_in_locked_out(*, request: HttpRequest | None, username: str) -> bool:
    counters = _counters(request, username)
    counts = cache.get_many([key for key, _ in counters])
    return any(counts.get(key, 0) >= limit for key, limit in counters)


def sign_in_failure_record(*, request: HttpRequest | None, username: str) -> None:
    window = settings.METERLINE_LOGIN_LOCKOUT_SECONDS
    for key, _ in _counters(request, username):
        # The window runs from a counter's first failure: `add` only sets a missing key,
        # and incrementing keeps its expiry.
        cache.add(key, 0, timeout=window)
        try:
            cache.incr(key)
        except ValueError:  # expired between the two
            cache.set(key, 1, timeout=window)


def sign_in_failures_forget(*, request: HttpRequest | None, username: str) -> None:
    name_counter, _ = _counters(request, username)[0]
    cache.delete(name_counter)


class LockoutModelBackend(ModelBackend):
    """Django's ModelBackend behind the lockout: a locked-out attempt is refused before its
    password is looked at (PermissionDenied: no other backend is asked either)."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if username is None or password is None:
            return None
        if sign_in_locked_out(request=request, username=username):
            raise PermissionDenied
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            sign_in_failure_record(request=request, username=username)
        else:
            sign_in_failures_forget(request=request, username=username)
        return user
