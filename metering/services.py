"""Writes of the operator API on meters: create, change, rotate the device token.

A device connection that must end (token rotated, meter disabled) is closed
through the meter's channel-layer group, after the change commits, so the
device's reconnect already sees the new state.
"""

import secrets
from decimal import Decimal

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.keys import new_secret, secret_hash
from billing.models import Account, Tariff
from metering.models import Meter, MeterTariff
from protocol import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED, meter_group

# WebSocket close codes of the device protocol (CONTRACT.md section 3).


@transaction.atomic
def meter_create(
    *,
    account: Account,
    tariff: Tariff,
    name: str,
    kind: str,
    rollover_at: Decimal | None,
    charge_point_id: str | None = None,
) -> tuple[Meter, str]:
    """A meter rated on `tariff` from now on; returns it and its device token, shown only once.

    An "ocpp" meter is an EV charge point: `charge_point_id` is the identity it connects
    with, and its token the password of its HTTP Basic authentication.
    """
    _check_currency(account=account, tariff=tariff)
    _check_billing_period(account=account, tariff=tariff, meter=None)
    if rollover_at is not None and kind != Meter.Kind.CUMULATIVE:
        raise ValidationError({"rollover_at": ["only a cumulative meter rolls over"]})
    _check_charge_point_id(kind=kind, charge_point_id=charge_point_id)
    token = _new_token(kind)
    try:
        with transaction.atomic():
            meter = Meter.objects.create(
                account=account,
                name=name,
                kind=kind,
                rollover_at=rollover_at,
                charge_point_id=charge_point_id,
                token_hash=secret_hash(token),
            )
    except IntegrityError:  # a request racing this one took the charge_point_id
        taken = {"charge_point_id": ["another meter has this charge_point_id"]}
        raise ValidationError(taken) from None
    MeterTariff.objects.create(meter=meter, tariff=tariff, effective_from=meter.created_at)
    return meter, token


def _new_token(kind: str) -> str:
    # A charge point keeps its password in AuthorizationKey, which OCPP's security
    # profile 1 holds to 40 hexadecimal characters (20 bytes) at most.
    return secrets.token_hex(20) if kind == Meter.Kind.OCPP else new_secret("mtk")


def _check_charge_point_id(*, kind: str, charge_point_id: str | None) -> None:
    if kind != Meter.Kind.OCPP:
        if charge_point_id is not None:
            raise ValidationError({"charge_point_id": ["only an ocpp meter has one"]})
        return
    if charge_point_id is None:
        raise ValidationError({"charge_point_id": ["an ocpp meter needs one"]})
    # Checked here for the answer; the unique index decides between racing requests.
    if Meter.objects.filter(charge_point_id=charge_point_id).exists():
        raise ValidationError({"charge_point_id": ["another meter has this charge_point_id"]})


@transaction.atomic
def meter_update(
    *,
    meter: Meter,
    name: str | None = None,
    active: bool | None = None,
    tariff: Tariff | None = None,
) -> Meter:
    """Rename, enable or disable a meter, or move it to another tariff from now on.

    Disabling closes the device's open connections (4403) once committed.
    """
    # Under the row lock the rating service takes, and saving only the fields
    # changed here, so a reading being rated keeps its register (last_value).
    meter = Meter.objects.select_for_update().get(pk=meter.pk)
    changed: list[str] = []
    if name is not None:
        meter.name = name
        changed.append("name")
    if active is not None:
        meter.active = active
        changed.append("active")
    if changed:
        meter.save(update_fields=changed)
    if tariff is not None:
        _check_currency(account=meter.account, tariff=tariff)
        _check_billing_period(account=meter.account, tariff=tariff, meter=meter)
        MeterTariff.objects.create(meter=meter, tariff=tariff, effective_from=timezone.now())
    if active is False:
        _connections_close(meter_id=meter.id, code=CLOSE_FORBIDDEN)
    return meter


@transaction.atomic
def meter_token_rotate(*, meter: Meter) -> str:
    """A new device token for the meter; the old one stops working and its connections close."""
    token = _new_token(meter.kind)
    Meter.objects.filter(pk=meter.pk).update(token_hash=secret_hash(token))
    _connections_close(meter_id=meter.id, code=CLOSE_UNAUTHENTICATED)
    return token


def _check_currency(*, account: Account, tariff: Tariff) -> None:
    if tariff.currency != account.currency:
        raise ValidationError(
            {"tariff": [f"the tariff is in {tariff.currency}, the account in {account.currency}"]}
        )


def _check_billing_period(*, account: Account, tariff: Tariff, meter: Meter | None) -> None:
    """An account bills in one rhythm: its meters' tariffs share one billing period.

    The account's first meter sets it; a tariff of another length is refused.
    """
    others = account.meters.exclude(pk=meter.pk) if meter else account.meters.all()
    if tariff.billing_period == account.billing_period:
        return
    if others.exists() or account.closed_until is not None:
        raise ValidationError(
            {
                "tariff": [
                    f"the tariff's billing period is {tariff.billing_period!r}; "
                    f"this account bills by {account.billing_period!r}"
                ]
            }
        )
    Account.objects.filter(pk=account.pk).update(billing_period=tariff.billing_period)
    account.billing_period = tariff.billing_period


def _connections_close(*, meter_id: str, code: int) -> None:
    def close() -> None:
        async_to_sync(get_channel_layer().group_send)(
            meter_group(meter_id), {"type": "meter.close", "code": code}
        )

    # robust: a channel layer that is down must not fail a change already committed.
    transaction.on_commit(close, robust=True)
