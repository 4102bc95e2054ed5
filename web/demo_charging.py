"""The EV charge points of `make demo`: ocpp meters of the demo account and the id tag
their simulated drivers authorize with. Idempotent, as web/demo.py is."""

from django.db import transaction

from metering.models import IdTag, Meter
from metering.services import meter_create, meter_token_rotate
from web.demo import demo_account_ensure

DEMO_ID_TAG = "DEMO0001"


@transaction.atomic
def demo_charge_points_ensure(*, count: int) -> list[Meter]:
    """The demo account's first `count` charge points (DEMO-CP-1...), made where missing,
    and its id tag."""
    account, tariff = demo_account_ensure()
    IdTag.objects.get_or_create(account=account, id_tag=DEMO_ID_TAG)
    meters = []
    for number in range(1, count + 1):
        charge_point_id = f"DEMO-CP-{number}"
        meter = Meter.objects.filter(charge_point_id=charge_point_id).first()
        if meter is None:
            meter, _ = meter_create(
                account=account,
                tariff=tariff,
                name=f"Demo charger {number}",
                kind=Meter.Kind.OCPP,
                rollover_at=None,
                charge_point_id=charge_point_id,
            )
        meters.append(meter)
    return meters


def demo_charge_point_passwords(*, count: int) -> dict[str, str]:
    """{charge point id: a fresh password}: passwords are stored hashed, so each run rotates
    them."""
    return {
        meter.charge_point_id: meter_token_rotate(meter=meter)
        for meter in demo_charge_points_ensure(count=count)
    }
