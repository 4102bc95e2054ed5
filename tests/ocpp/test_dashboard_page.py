"""The dashboard page shows the sessions charging now, with their amount so far, and
hands its socket's messages to charging.js, which keeps them up to date."""

import json
import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from billing.models import AccountMember
from metering.ocpp.readings import start_reading
from metering.ocpp.services import transaction_start
from metering.rating import readings_rate
from protocol import ReadingIn
from tests.ocpp.conftest import ID_TAG, make_charge_point

pytestmark = pytest.mark.django_db


def member_client(account) -> Client:
    user = get_user_model().objects.create_user("driver-ops", password="pw-123456")
    AccountMember.objects.create(user=user, account=account)
    client = Client()
    client.force_login(user)
    return client


def page_data(content: bytes) -> dict:
    found = re.search(rb'<script id="page-data" type="application/json">(.*?)</script>', content)
    return json.loads(found.group(1))


def test_the_page_lists_the_active_sessions_with_their_running_amount():
    made = make_charge_point(unit_price="0.40")
    started = timezone.now() - timedelta(minutes=10)
    session = transaction_start(
        charge_point=made.identity,
        connector_id=2,
        id_tag=ID_TAG,
        meter_start_wh=5000,
        started_at=started,
    )
    tid = session.transaction_id
    later = ReadingIn(id=f"tx{tid}-x", ts=started + timedelta(minutes=5), value=7)
    readings_rate(
        meter_id=made.meter.id,
        readings=[start_reading(transaction_id=tid, meter_start_wh=5000, at=started), later],
    )
    response = member_client(made.account).get(f"/accounts/{made.account.id}/")
    assert response.status_code == 200
    [shown] = page_data(response.content)["sessions"]
    assert (shown["transaction_id"], shown["connector_id"]) == (tid, 2)
    assert (shown["energy_kwh"], shown["amount"], shown["status"]) == ("2", "0.800000", "active")
    assert b'id="charging-card"' in response.content and b"charging.js" in response.content
    assert b'id="charging-card" aria-labelledby="charging-label" hidden' not in response.content


def test_without_sessions_the_section_is_hidden():
    made = make_charge_point()
    response = member_client(made.account).get(f"/accounts/{made.account.id}/")
    assert page_data(response.content)["sessions"] == []
    assert b'id="charging-card" aria-labelledby="charging-label" hidden' in response.content
