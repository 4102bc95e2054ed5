"""Fuzzing the operator REST API and HTTP ingest with arbitrary and near-valid JSON bodies.

Whatever the body, the answer is JSON with a 2xx or 4xx status, never a 500;
a 400 for a body that is JSON names at least one field; a tariff that is
created can be read back, put on a meter and priced.
"""

import json
from decimal import Decimal

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from billing.models import Charge
from metering.parsing import ReadingIn
from metering.rating import readings_rate
from tests.factories import make_account, make_meter, make_tariff
from tests.fuzz.strategies import (
    CONTRACT_CODES,
    ODD_TEXT,
    decimal_amounts,
    frames,
    json_values,
    raw_texts,
    weighted,
)

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@pytest.fixture
def operator(operator_key) -> APIClient:
    """The operator's client, seeing a 500 as a response rather than an exception."""
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {operator_key}")
    return client


def send(client, method: str, path: str, body, **headers):
    """`body` as JSON unless it is already text or bytes (then sent as it is)."""
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return getattr(client, method)(path, data, content_type="application/json", headers=headers)


def answer_of(response, body) -> dict:
    """The JSON of an answer that keeps the API's promises; fails the test otherwise."""
    assert response.status_code < 500, (body, response.status_code, response.content[:500])
    assert response.status_code >= 200, response.status_code
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    payload = response.json()
    if response.status_code == 400 and payload.get("code") != "parse_error":
        errors = payload.get("errors")
        assert isinstance(errors, dict) and errors, payload
        assert all(isinstance(v, list) and v for v in errors.values()), payload
    return payload


# --- shared pieces of bodies --------------------------------------------------

CURRENCIES = ["EUR", "USD", "JPY", "KWD"]
anything = st.one_of(json_values, st.sampled_from([[], {}, "", 0, None, True]))
names = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40)
valid_decimal_strings = decimal_amounts(st.integers(0, 10**6), st.integers(-6, 0)).map(
    lambda amount: amount.raw
)
decimal_strings = weighted(
    (6, valid_decimal_strings),
    (
        1,
        st.sampled_from(
            [
                "0",
                "-0",
                " 0.5 ",
                "999999999999999999",
                "1000000000000000000",
                "1E+17",
                "0.000000000001",
                "0.0000000000001",
                "-1",
                "-0.01",
                "NaN",
                "Infinity",
                "",
                "abc",
                "1e400",
                "1,5",
            ]
        ),
    ),
    (1, st.one_of(st.integers(-5, 5), st.floats(allow_nan=False), st.none(), st.booleans())),
)


def _exact_on_sqlite(text) -> bool:
    # Money columns keep 15 significant digits on SQLite: a known bug above that
    # (test_a_fixed_fee_the_api_accepts_reads_back_unchanged).
    try:
        return abs(Decimal(text.strip())) < 10**9
    except (AttributeError, ArithmeticError):
        return True


money_strings = decimal_strings.filter(_exact_on_sqlite)
EXTRA_KEYS = ["id", "created_at", "token", "active", "kind", "tiers", "unit_price", "x"]


@st.composite
def mutated(draw, base, wild=anything):
    """A body from `base`, then up to three changes: a field dropped, made wild, or added."""
    body = dict(draw(base))
    for _ in range(draw(st.sampled_from([0, 0, 0, 0, 0, 1, 1, 2, 3]))):
        action = draw(st.sampled_from(["drop", "wild", "add"]))
        if action != "add" and body:
            name = draw(st.sampled_from(sorted(body)))
            if action == "drop":
                del body[name]
            else:
                body[name] = draw(wild)
        else:
            body[draw(st.one_of(st.sampled_from(EXTRA_KEYS), ODD_TEXT))] = draw(wild)
    return body


def bodies(base):
    """Mostly mutations of a valid body; sometimes any JSON value at all."""
    return weighted((5, mutated(base)), (1, anything))


def mostly(valid, *others):
    return weighted((4, valid), *[(1, other) for other in others])


# --- accounts -----------------------------------------------------------------

account_bodies = bodies(
    st.fixed_dictionaries(
        {
            "name": mostly(names, st.text(max_size=210)),
            "currency": mostly(
                st.sampled_from(CURRENCIES), st.sampled_from(["eur", "EURO", "XXX", " EUR"])
            ),
            "timezone": mostly(
                st.sampled_from(["Europe/Berlin", "UTC", "Asia/Kolkata", "Pacific/Chatham"]),
                st.sampled_from(["Mars/Olympus", "utc", "+01:00"]),
            ),
        }
    )
)


@FUZZ
@given(body=account_bodies)
def test_account_create_never_fails_on_its_input(operator, body):
    response = send(operator, "post", "/api/v1/accounts/", body)
    payload = answer_of(response, body)
    assert response.status_code in (201, 400), response.status_code
    if response.status_code == 201:
        assert isinstance(payload["id"], str)
        again = operator.get(f"/api/v1/accounts/{payload['id']}/")
        assert answer_of(again, None) == payload


# --- tariffs ------------------------------------------------------------------


@st.composite
def ascending_tiers(draw):
    bounds = draw(
        st.lists(st.decimals(min_value=Decimal("0.001"), max_value=10**6, places=3), max_size=3)
    )
    bounds = sorted(set(bounds))
    prices = draw(st.lists(decimal_strings, min_size=len(bounds) + 1, max_size=len(bounds) + 1))
    tiers = [{"up_to": f"{b:f}", "unit_price": p} for b, p in zip(bounds, prices, strict=False)]
    return [*tiers, {"up_to": None, "unit_price": prices[-1]}]


tiers = weighted(
    (4, ascending_tiers()),
    (1, ascending_tiers().map(lambda tiers: tiers[::-1])),
    (
        1,
        st.lists(
            st.one_of(
                mutated(
                    st.fixed_dictionaries({"up_to": decimal_strings, "unit_price": decimal_strings})
                ),
                anything,
            ),
            max_size=4,
        ),
    ),
)

clocks = st.builds("{:02d}:{:02d}".format, st.integers(0, 23), st.sampled_from([0, 15, 30, 45, 59]))
odd_clocks = st.one_of(
    clocks,
    st.sampled_from(["24:00", "24:00", "7:00", "07:00:00", "", "noon", "25:00", "12:60"]),
    anything,
)


def _no_nan(name) -> bool:
    # A band named "NaN" is a known 500 (test_a_band_named_nan_is_refused_not_a_500).
    try:
        return not Decimal(name.strip()).is_nan()
    except (AttributeError, ArithmeticError):
        return True


@st.composite
def band_lists(draw):
    """Bands on every other day of the week, so they never overlap, even past midnight."""
    count = draw(st.integers(0, 3))
    bands = []
    for index in range(count):
        band = {
            "name": draw(names),
            "days": [2 * index],
            "start": draw(clocks),
            "end": draw(st.one_of(clocks, st.just("24:00"))),
            "unit_price": draw(decimal_strings),
        }
        if not draw(st.integers(0, 5)):
            band["days"] = draw(
                st.lists(st.one_of(st.integers(-2, 8), st.booleans(), ODD_TEXT), max_size=8)
            )
        if not draw(st.integers(0, 5)):
            band[draw(st.sampled_from(["start", "end", "name"]))] = draw(odd_clocks)
        bands.append(band)
    if bands and not draw(st.integers(0, 4)):
        bands.append(dict(bands[0]))  # overlaps the first
    return [band for band in bands if _no_nan(band.get("name"))]


bands = weighted((4, band_lists()), (1, st.lists(anything, max_size=2)))

MODEL_FIELDS = {
    "per_unit": {"unit_price": decimal_strings},
    "graduated": {"tiers": tiers},
    "volume": {"tiers": tiers},
    "package": {"package_size": decimal_strings, "package_price": decimal_strings},
    "time_of_use": {"bands": bands, "default_unit_price": decimal_strings},
}
ALL_MODEL_FIELDS = {name: s for fields in MODEL_FIELDS.values() for name, s in fields.items()}


@st.composite
def valid_tariff_bodies(draw):
    model = draw(st.sampled_from(sorted(MODEL_FIELDS)))
    body = draw(
        st.fixed_dictionaries(
            {
                "name": names,
                "currency": st.sampled_from(CURRENCIES),
                "model": st.just(model),
                **MODEL_FIELDS[model],
            },
            optional={
                "unit": st.text(max_size=40),
                "billing_period": mostly(
                    st.sampled_from(["month", "week", "day", "PT30S", "PT1H"]),
                    st.sampled_from(["PT0S", "P1M", "PT99999999S", "Month"]),
                ),
                "fixed_fee": money_strings,
                "minimum": money_strings,
            },
        )
    )
    if not draw(st.integers(0, 5)):
        body.update(draw(st.fixed_dictionaries({}, optional=ALL_MODEL_FIELDS)))
    return body


tariff_bodies = bodies(valid_tariff_bodies())


@FUZZ
@given(body=tariff_bodies)
def test_tariff_create_never_fails_and_what_it_creates_can_be_priced(operator, body):
    response = send(operator, "post", "/api/v1/tariffs/", body)
    payload = answer_of(response, body)
    assert response.status_code in (201, 400), response.status_code
    if response.status_code != 201:
        return
    read = operator.get(f"/api/v1/tariffs/{payload['id']}/")
    assert answer_of(read, None) == payload
    account = send(
        operator,
        "post",
        "/api/v1/accounts/",
        {"name": "fuzz", "currency": payload["currency"], "timezone": "Pacific/Kiritimati"},
    )
    assert account.status_code == 201, account.json()
    meter = send(
        operator,
        "post",
        "/api/v1/meters/",
        {"account": account.json()["id"], "tariff": payload["id"], "name": "m", "kind": "delta"},
    )
    assert meter.status_code == 201, meter.json()
    meter_id = meter.json()["id"]
    readings = [
        ReadingIn(id="r-1", ts=timezone.now(), quantity=Decimal("1")),
        ReadingIn(id="r-2", ts=timezone.now(), quantity=Decimal("0.5")),
    ]
    result = readings_rate(meter_id=meter_id, readings=readings)
    assert (result.ids, result.errors) == (["r-1", "r-2"], [])
    assert Charge.objects.filter(meter_id=meter_id).count() == 2


# --- meters -------------------------------------------------------------------


@pytest.fixture
def world(db):
    """An account with a meter, tariffs it may and may not move to, and a spare account."""
    account = make_account()
    tariffs = [
        make_tariff("per_unit"),
        make_tariff("graduated"),
        make_tariff("per_unit", currency="USD"),
        make_tariff("per_unit", billing_period="week"),
    ]
    meter, token = make_meter(account, tariffs[0])
    return {
        "accounts": [account.id, make_account(currency="JPY").id],
        "tariffs": [t.id for t in tariffs],
        "meter": meter,
        "token": token,
    }


def meter_bodies(world):
    eur_account, jpy_account = world["accounts"]
    eur, graduated, usd, weekly = world["tariffs"]
    ids = st.sampled_from([*world["accounts"], *world["tariffs"], "acc_missing", ""])
    return bodies(
        st.fixed_dictionaries(
            {
                "account": mostly(st.sampled_from([eur_account] * 3 + [jpy_account]), ids),
                "tariff": mostly(st.sampled_from([eur, graduated, graduated, usd, weekly]), ids),
                "name": mostly(names, st.text(max_size=210)),
                "kind": mostly(
                    st.sampled_from(["delta", "cumulative"]), st.sampled_from(["DELTA", "gauge"])
                ),
            },
            optional={"rollover_at": mostly(st.none(), decimal_strings)},
        )
    )


@FUZZ
@given(data=st.data())
def test_meter_create_never_fails_on_its_input(operator, world, data):
    body = data.draw(meter_bodies(world))
    response = send(operator, "post", "/api/v1/meters/", body)
    payload = answer_of(response, body)
    assert response.status_code in (201, 400), response.status_code
    if response.status_code == 201:
        assert payload["token"]
        read = operator.get(f"/api/v1/meters/{payload['id']}/")
        assert answer_of(read, None) == {k: v for k, v in payload.items() if k != "token"}


@FUZZ
@given(data=st.data())
def test_meter_update_never_fails_on_its_input(operator, world, data):
    meter_id = world["meter"].id
    body = data.draw(
        bodies(
            st.fixed_dictionaries(
                {},
                optional={
                    "name": mostly(names, st.text(max_size=210)),
                    "active": mostly(
                        st.booleans(), st.sampled_from(["true", "no", 1, 0, "x", None])
                    ),
                    "tariff": st.sampled_from([*world["tariffs"], "trf_missing", ""]),
                },
            )
        )
    )
    path = f"/api/v1/meters/{meter_id}/"
    response = send(operator, "patch", path, body)
    payload = answer_of(response, body)
    assert response.status_code in (200, 400), response.status_code
    if response.status_code == 200:
        assert answer_of(operator.get(path), None) == payload
        if isinstance(body, dict) and "name" in body:
            assert payload["name"] == str(body["name"]).strip()


# --- HTTP ingest --------------------------------------------------------------


@st.composite
def ingest_bodies(draw):
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(st.one_of(raw_texts, raw_texts.map(str.encode)))
    if choice == 1:
        return {"readings": draw(json_values)}
    spec = draw(frames("quantity"))
    return {"readings": [item.render(timezone.now()) for item in spec.items]}


@FUZZ
@given(body=ingest_bodies())
def test_http_ingest_never_fails_and_charges_exactly_what_it_acks(operator, world, body):
    meter = world["meter"]
    acked = world.setdefault("acked", [])
    response = ingest(meter.id, world["token"], body)
    assert response.status_code in (200, 400, 413), (body, response.status_code, response.content)
    payload = response.json()
    assert set(payload) == {"ids", "duplicates", "errors"}
    assert all(e["code"] in CONTRACT_CODES for e in payload["errors"]), payload
    acked += payload["ids"]
    assert len(acked) == len(set(acked)), "an id charged twice"
    charged = set(Charge.objects.filter(meter=meter).values_list("reading__reading_id", flat=True))
    assert charged == set(acked)
    assert set(payload["duplicates"]) <= charged


# --- known bugs, pinned -------------------------------------------------------

DEEP = "[" * 50_000 + "]" * 50_000


def ingest(meter_id: str, token: str, body):
    return send(
        APIClient(raise_request_exception=False),
        "post",
        f"/api/v1/meters/{meter_id}/readings/",
        body,
        Authorization=f"Bearer {token}",
    )


@pytest.mark.parametrize("where", ["operator API", "HTTP ingest"])
def test_deeply_nested_json_is_a_400_not_a_500(operator, world, where):
    if where == "operator API":
        response = send(operator, "post", "/api/v1/accounts/", DEEP)
    else:
        response = ingest(world["meter"].id, world["token"], DEEP)
    assert response.status_code == 400


def one_reading(**fields) -> dict:
    return {"readings": [{"id": "r", "ts": timezone.now().isoformat(), "quantity": "1", **fields}]}


def test_http_ingest_of_an_id_with_a_lone_surrogate_is_not_a_500(world):
    body = json.dumps(one_reading()).replace('"id": "r"', '"id": "\\ud800"')
    assert ingest(world["meter"].id, world["token"], body).status_code < 500


def test_http_ingest_of_a_timestamp_in_year_one_is_not_a_500(world):
    body = one_reading(ts="0001-01-01T00:00:00Z")
    assert ingest(world["meter"].id, world["token"], body).status_code < 500


def time_of_use(band_name: str) -> dict:
    band = {"name": band_name, "days": [0], "start": "07:00", "end": "22:00", "unit_price": "0.3"}
    return {
        "name": "t",
        "currency": "EUR",
        "model": "time_of_use",
        "bands": [band],
        "default_unit_price": "0.2",
    }


@pytest.mark.parametrize("name", ["NaN", "sNaN"])
def test_a_band_named_nan_is_refused_or_kept_not_a_500(operator, name):
    assert send(operator, "post", "/api/v1/tariffs/", time_of_use(name)).status_code < 500


def test_a_band_name_that_looks_like_a_number_is_only_a_name(operator):
    assert send(operator, "post", "/api/v1/tariffs/", time_of_use("1e20")).status_code == 201


def test_the_largest_accepted_tariff_and_reading_do_not_break_the_account(operator):
    tariff = {"name": "dear", "currency": "EUR", "model": "per_unit"}
    tariff["unit_price"] = "999999999.999999999999"  # the dearest the API accepts
    tariff_id = send(operator, "post", "/api/v1/tariffs/", tariff).json()["id"]
    account = {"name": "big", "currency": "EUR", "timezone": "UTC"}
    account_id = send(operator, "post", "/api/v1/accounts/", account).json()["id"]
    meter = {"account": account_id, "tariff": tariff_id, "name": "m", "kind": "delta"}
    meter = send(operator, "post", "/api/v1/meters/", meter).json()
    largest = one_reading(quantity="999999999999999.999999999")  # the largest the parser accepts
    answered = ingest(meter["id"], meter["token"], largest)
    assert answered.status_code == 200
    assert [e["code"] for e in answered.json()["errors"]] == ["invalid_reading"]
    for path in ("charges", "usage"):
        assert operator.get(f"/api/v1/accounts/{account_id}/{path}/").status_code == 200


@pytest.mark.parametrize("fee", ["999999999999999.999999", "1234567890.123456"])
def test_a_fixed_fee_the_api_accepts_reads_back_unchanged(operator, fee):
    body = {"name": "t", "currency": "EUR", "model": "per_unit", "unit_price": "0.1"}
    created = send(operator, "post", "/api/v1/tariffs/", {**body, "fixed_fee": fee})
    assert created.status_code == 201
    read = operator.get(f"/api/v1/tariffs/{created.json()['id']}/").json()
    assert Decimal(read["fixed_fee"]) == Decimal(fee)
