"""The signed-in pages: sign-in, the account list, the dashboard page and invoice CSVs."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from billing.invoicing import account_periods_close
from billing.models import AccountMember
from metering.parsing import ReadingIn
from metering.rating import readings_rate
from tests.factories import make_account, make_meter, make_tariff

pytestmark = pytest.mark.django_db


def make_user(username: str = "alice", **fields):
    return get_user_model().objects.create_user(username=username, password="pw-123456", **fields)


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_pages_need_a_sign_in():
    account = make_account()
    client = Client()
    for path in ("/", f"/accounts/{account.id}/", f"/accounts/{account.id}/invoices/inv_x.csv"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith("/login/?next=")


def test_sign_in_through_the_form_then_sign_out():
    make_user()
    client = Client()
    assert client.get("/login/").status_code == 200
    wrong = client.post("/login/", {"username": "alice", "password": "nope"})
    assert wrong.status_code == 200 and b'role="alert"' in wrong.content
    response = client.post("/login/", {"username": "alice", "password": "pw-123456"})
    assert (response.status_code, response["Location"]) == (302, "/")
    assert client.get("/").status_code == 200
    assert client.post("/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_the_list_shows_the_users_accounts_and_superusers_see_all():
    mine, _ = make_account(name="Mine Ltd"), make_account(name="Theirs Ltd")
    alice = make_user()
    AccountMember.objects.create(user=alice, account=mine)
    page = signed_in(alice).get("/").content.decode()
    assert "Mine Ltd" in page and "Theirs Ltd" not in page
    # Who else sees every account: tests/web/test_account_access.py.
    root_page = signed_in(make_user("root", is_superuser=True)).get("/").content.decode()
    assert "Mine Ltd" in root_page and "Theirs Ltd" in root_page


def test_dashboard_page_404_403_and_allowed():
    mine, theirs = make_account(), make_account()
    meter, _ = make_meter(mine, make_tariff())
    alice = make_user()
    AccountMember.objects.create(user=alice, account=mine)
    client = signed_in(alice)
    assert client.get("/accounts/acc_missing/").status_code == 404
    assert client.get(f"/accounts/{theirs.id}/").status_code == 403
    response = client.get(f"/accounts/{mine.id}/")
    assert response.status_code == 200
    page = response.content.decode()
    assert f'"socket_path": "/ws/accounts/{mine.id}/"' in page
    assert meter.id in page and '"currency": "EUR"' in page
    assert "?token=" not in page  # the socket uses the session, no key in the page
    root = signed_in(make_user("root", is_superuser=True))
    assert root.get(f"/accounts/{theirs.id}/").status_code == 200


def test_an_inactive_member_is_refused():
    account = make_account()
    bob = make_user("bob", is_active=False)
    AccountMember.objects.create(user=bob, account=account)
    client = Client()
    client.force_login(bob)
    # Django's auth backend drops an inactive user's session: an anonymous visitor, sent to log in.
    response = client.get(f"/accounts/{account.id}/")
    assert response.status_code == 302
    assert response["Location"] == f"/login/?next=/accounts/{account.id}/"


def test_invoice_csv_for_members_only():
    account, other = make_account(), make_account()
    meter, _ = make_meter(
        account, make_tariff(unit_price="0.3"), effective_from=datetime(2026, 1, 1, tzinfo=UTC)
    )
    readings_rate(
        meter_id=meter.id, readings=[ReadingIn(id="r", ts=timezone.now(), quantity=Decimal("10"))]
    )
    [invoice] = account_periods_close(account_id=account.id, until=timezone.now(), close_open=True)
    alice = make_user()
    AccountMember.objects.create(user=alice, account=account)
    client = signed_in(alice)
    page = client.get(f"/accounts/{account.id}/").content.decode()
    assert f"/accounts/{account.id}/invoices/{invoice.id}.csv" in page
    response = client.get(f"/accounts/{account.id}/invoices/{invoice.id}.csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = response.content.decode().splitlines()
    assert rows[0].startswith("invoice,period_start") and len(rows) >= 2
    assert client.get(f"/accounts/{other.id}/invoices/{invoice.id}.csv").status_code == 403
    AccountMember.objects.create(user=alice, account=other)
    # The invoice is not the other account's.
    assert client.get(f"/accounts/{other.id}/invoices/{invoice.id}.csv").status_code == 404
