"""Over the device socket, a quantity with a newline (or anything) around it is refused,
never charged: `$` once let "1.5\n" through."""

import json

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from billing.models import Charge
from metering.models import Reading
from tests.consumers.conftest import device
from tests.factories import make_account, make_meter, make_tariff

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def new_meter():
    return make_meter(make_account(), make_tariff())


@database_sync_to_async
def recorded(meter) -> tuple[int, int]:
    return Reading.objects.filter(meter=meter).count(), Charge.objects.filter(meter=meter).count()


@pytest.mark.parametrize("quantity", ["1.5\n", "1.5\r\n", " 1.5"])
async def test_a_quantity_with_anything_around_it_is_refused(quantity):
    meter, token = await new_meter()
    client = device(token)
    assert (await client.connect())[0]
    ts = timezone.now().isoformat()
    await client.send_to(
        text_data=json.dumps({"type": "reading", "id": "r", "ts": ts, "quantity": quantity})
    )
    answer = json.loads(await client.receive_from(timeout=5))
    await client.disconnect()
    assert (answer["type"], answer["id"], answer["code"]) == ("error", "r", "invalid_reading")
    assert await recorded(meter) == (0, 0)
