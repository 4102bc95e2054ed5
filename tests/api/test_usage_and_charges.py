"""GET usage of the open period and the paginated, filtered charge list."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.models import Charge, MeterPeriodUsage
from billing.periods import period_bounds
from metering.models import Reading
from tests.factories import make_account, make_meter, make_tariff

pytestmark = pytest.mark.django_db


@pytest.fixture
def account():
    return make_account()


@pytest.fixture
def tariff():
    return make_tariff()


def charge(meter, tariff, n: int, *, amount="0.300000", rated_at=None) -> Charge:
    ts = datetime(2026, 3, 1, 12, tzinfo=UTC) + timedelta(minutes=n)
    reading = Reading.objects.create(
        meter=meter,
        reading_id=f"r-{n}",
        ts=ts,
        quantity=Decimal("1.5"),
        received_at=ts,
    )
    return Charge.objects.create(
        account=meter.account,
        meter=meter,
        reading=reading,
        tariff=tariff,
        period_start=datetime(2026, 3, 1, tzinfo=UTC),
        quantity=Decimal("1.5"),
        amount=Decimal(amount),
        currency="EUR",
        rated_at=rated_at or ts,
    )


def test_usage_of_the_open_period(api, account, tariff):
    first, _ = make_meter(account, tariff)
    second, _ = make_meter(account, tariff)
    start, end = period_bounds(timezone.now(), timezone=account.timezone)
    MeterPeriodUsage.objects.create(
        meter=first,
        account=account,
        period_start=start,
        period_end=end,
        usage=Decimal("41.2"),
        amount=Decimal("12.34"),
    )
    response = api.get(f"/api/v1/accounts/{account.id}/usage/")
    assert response.status_code == 200
    body = response.json()
    assert body["currency"] == "EUR"
    assert body["total"] == "12.340000"
    assert body["period"]["start"].endswith("Z") and body["period"]["end"].endswith("Z")
    assert datetime.fromisoformat(body["period"]["start"]) == start
    assert datetime.fromisoformat(body["period"]["end"]) == end
    assert body["meters"] == [
        {"id": first.id, "usage": "41.2", "amount": "12.340000"},
        {"id": second.id, "usage": "0", "amount": "0.000000"},
    ]


def test_usage_of_unknown_account_is_404(api):
    assert api.get("/api/v1/accounts/acc_missing/usage/").status_code == 404


def test_charges_are_formatted(api, account, tariff):
    meter, _ = make_meter(account, tariff)
    created = charge(meter, tariff, 0, amount="0.45")
    response = api.get(f"/api/v1/accounts/{account.id}/charges/")
    assert response.status_code == 200
    assert response.json() == {
        "results": [
            {
                "id": str(created.id),
                "meter": meter.id,
                "reading_id": "r-0",
                "reading_ts": "2026-03-01T12:00:00Z",
                "quantity": "1.5",
                "amount": "0.450000",
                "currency": "EUR",
                "rated_at": "2026-03-01T12:00:00Z",
                "period_start": "2026-03-01T00:00:00Z",
                "late": False,
                "lines": [],
            }
        ],
        "next": None,
    }


def test_charges_page_by_id_with_next_links(api, account, tariff):
    meter, _ = make_meter(account, tariff)
    ids = [str(charge(meter, tariff, n).id) for n in range(5)]
    seen = []
    url = f"/api/v1/accounts/{account.id}/charges/?limit=2"
    pages = 0
    while url:
        response = api.get(url)
        assert response.status_code == 200
        body = response.json()
        seen += [c["id"] for c in body["results"]]
        url = body["next"]
        pages += 1
        if url:
            assert url.startswith("http://testserver/api/v1/accounts/")
            assert "limit=2" in url
    assert seen == ids
    assert pages == 3


def test_default_page_is_100(api, account, tariff):
    meter, _ = make_meter(account, tariff)
    for n in range(101):
        charge(meter, tariff, n)
    body = api.get(f"/api/v1/accounts/{account.id}/charges/").json()
    assert len(body["results"]) == 100
    assert body["next"] is not None
    rest = api.get(body["next"]).json()
    assert [c["reading_id"] for c in rest["results"]] == ["r-100"]
    assert rest["next"] is None


def test_one_query_for_the_page(api, account, tariff):
    meter, _ = make_meter(account, tariff)
    for n in range(10):
        charge(meter, tariff, n)
    with CaptureQueriesContext(connection) as queries:
        response = api.get(f"/api/v1/accounts/{account.id}/charges/")
    assert len(response.json()["results"]) == 10
    charge_queries = [q for q in queries if "billing_charge" in q["sql"]]
    assert len(charge_queries) == 1
    assert not [q for q in queries if q["sql"].lstrip().startswith('SELECT "metering_reading"')]


def test_filter_by_meter(api, account, tariff):
    first, _ = make_meter(account, tariff)
    second, _ = make_meter(account, tariff)
    charge(first, tariff, 0)
    wanted = charge(second, tariff, 1)
    body = api.get(f"/api/v1/accounts/{account.id}/charges/?meter={second.id}").json()
    assert [c["id"] for c in body["results"]] == [str(wanted.id)]


def test_filter_since_rated_at(api, account, tariff):
    meter, _ = make_meter(account, tariff)
    charge(meter, tariff, 0, rated_at=datetime(2026, 3, 1, tzinfo=UTC))
    later = charge(meter, tariff, 1, rated_at=datetime(2026, 3, 2, tzinfo=UTC))
    url = f"/api/v1/accounts/{account.id}/charges/"
    body = api.get(url, {"since": "2026-03-01T12:00:00Z"}).json()
    assert [c["id"] for c in body["results"]] == [str(later.id)]
    body = api.get(url, {"since": "2026-03-02T01:00:00+01:00"}).json()
    assert [c["id"] for c in body["results"]] == [str(later.id)]


def test_other_accounts_charges_are_not_listed(api, account, tariff):
    other = make_account(name="Other")
    meter, _ = make_meter(other, tariff)
    charge(meter, tariff, 0)
    body = api.get(f"/api/v1/accounts/{account.id}/charges/?meter={meter.id}").json()
    assert body == {"results": [], "next": None}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"after": "x"}, "after"),
    ],
)
def test_bad_query_is_named(api, account, query, field):
    response = api.get(f"/api/v1/accounts/{account.id}/charges/", query)
    assert response.status_code == 400
    assert list(response.json()["errors"]) == [field]


def test_charges_of_unknown_account_is_404(api):
    assert api.get("/api/v1/accounts/acc_missing/charges/").status_code == 404
