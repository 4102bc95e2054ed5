"""Sign-in throttling and password rules, on the sign-in page and on the admin's.

After METERLINE_LOGIN_FAILURES failures for one user name from one address, or
METERLINE_LOGIN_FAILURES_PER_ADDRESS from one address whatever the names, sign-ins from
there are refused for METERLINE_LOGIN_LOCKOUT_SECONDS, the right password too; then they
work again. The count lives in Django's cache, Redis in a deployment, so every web
process sees it (tests/integration/test_access.py).
"""

import time

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.test import Client

pytestmark = pytest.mark.django_db

PASSWORD = "a-good-pw-4321"
LOCKED = "Too many failed sign-ins"


@pytest.fixture(autouse=True)
def limits(settings):
    settings.METERLINE_LOGIN_FAILURES = 3
    settings.METERLINE_LOGIN_FAILURES_PER_ADDRESS = 6
    settings.METERLINE_LOGIN_LOCKOUT_SECONDS = 60
    # A fast hasher: the attempts of a test take milliseconds, well within its windows.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache.clear()
    yield
    cache.clear()


def make_user(username: str = "alice", **fields):
    return get_user_model().objects.create_user(username=username, password=PASSWORD, **fields)


def sign_in(username: str, password: str, *, address: str = "10.0.0.1", path: str = "/login/"):
    """(signed in?, the page's text) for one attempt from `address`."""
    client = Client(REMOTE_ADDR=address)
    response = client.post(path, {"username": username, "password": password})
    return response.status_code == 302, response.content.decode()


def test_the_right_password_is_refused_once_a_name_failed_too_often_from_an_address():
    make_user()
    for _ in range(2):
        ok, page = sign_in("alice", "wrong")
        assert not ok and "password didn" in page and LOCKED not in page
    ok, page = sign_in("alice", "wrong")
    assert not ok and LOCKED in page  # the third failure says so at once
    ok, page = sign_in("alice", PASSWORD)
    assert not ok and LOCKED in page
    # The same name from another address, and another name from this one, still sign in.
    assert sign_in("alice", PASSWORD, address="10.0.0.2")[0]
    make_user("bob")
    assert sign_in("bob", PASSWORD)[0]


def test_the_lockout_ends(settings):
    settings.METERLINE_LOGIN_LOCKOUT_SECONDS = 2
    make_user()
    for _ in range(3):
        assert not sign_in("alice", "wrong")[0]
    assert not sign_in("alice", PASSWORD)[0]
    time.sleep(2.2)  # the window of the failures has passed
    assert sign_in("alice", PASSWORD)[0]


def test_names_are_one_whatever_their_case_and_unknown_names_count_alike():
    make_user()
    for name in ("Alice", "ALICE", "alice"):
        assert not sign_in(name, "wrong")[0]
    assert not sign_in("alice", PASSWORD)[0]
    for _ in range(3):
        assert not sign_in("nobody", "wrong")[0]
    assert LOCKED in sign_in("nobody", "wrong")[1]  # as for a real user: nothing to learn


def test_many_names_from_one_address_lock_the_address():
    make_user("zoe")
    for number in range(6):
        assert not sign_in(f"guess-{number}", "wrong")[0]
    ok, page = sign_in("zoe", PASSWORD)
    assert not ok and LOCKED in page
    assert sign_in("zoe", PASSWORD, address="10.0.0.9")[0]


def test_a_success_forgets_the_names_failures():
    make_user()
    for _ in range(2):
        assert not sign_in("alice", "wrong")[0]
    assert sign_in("alice", PASSWORD)[0]
    for _ in range(2):
        assert not sign_in("alice", "wrong")[0]
    assert sign_in("alice", PASSWORD)[0]


def test_the_admins_sign_in_is_locked_out_too():
    make_user("root", is_staff=True, is_superuser=True)
    for _ in range(3):
        assert not sign_in("root", "wrong", path="/admin/login/")[0]
    ok, page = sign_in("root", PASSWORD, path="/admin/login/")
    assert not ok and LOCKED in page
    # ...and the lock is one for both pages.
    assert not sign_in("root", PASSWORD)[0]


def test_passwords_must_pass_djangos_validators():
    user = make_user()
    for weak in ("password1234", "1234567890123", "short-pw-1"):
        with pytest.raises(ValidationError):
            validate_password(weak, user=user)
    validate_password("plum-orbit-7-lantern", user=user)


def test_the_admin_refuses_a_weak_password():
    admin = make_user("root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    response = client.post(
        f"/admin/auth/user/{admin.pk}/password/",
        {"password1": "password1234", "password2": "password1234"},
    )
    assert response.status_code == 200  # the form again, with the validators' errors
    assert "too common" in response.content.decode()
    admin.refresh_from_db()
    assert admin.check_password(PASSWORD)
