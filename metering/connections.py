"""Which device connection a meter has open, and in which web process, for the online dots
(and the `meter.offline` webhook event when it closes: metering/offline.py)."""

from decimal import Decimal

from django.db import connection, transaction

from billing.keys import secret_hash
from billing.models import Account
from metering.models import Meter
from metering.offline import DISCONNECTED, meter_offline_mark
from metering.presence import PROCESS_ID, web_presence_start
from metering.selectors import MeterIdentity, meter_for_token

# The meter of a token, if still active, made this connection's in one statement; the
# connection it held before, and its account's credit state (PostgreSQL). FOR UPDATE
# orders two connects of one meter: the second reads the first's connection as previous.
_TAKE = f"""
WITH held AS (
    SELECT id, connection FROM {Meter._meta.db_table}
    WHERE id = %(meter)s AND token_hash = %(token_hash)s AND active
    FOR UPDATE
)
UPDATE {Meter._meta.db_table} AS meter
SET connection = %(channel)s, connection_process = %(process)s
FROM held, {Account._meta.db_table} AS account
WHERE meter.id = held.id AND account.id = meter.account_id
RETURNING meter.account_id, meter.kind, held.connection, account.cut_off,
    account.credited - account.consumed
"""  # noqa: S608 (table names from the models)


def meter_connection_open(*, meter_id: str, channel_name: str) -> str:
    """Make this the meter's connection, held by this web process (whose presence is
    kept from now on, see metering/presence.py); returns the one it replaces ("" if none)."""
    web_presence_start()
    with transaction.atomic():
        meter = Meter.objects.select_for_update().only("connection").get(pk=meter_id)
        previous, meter.connection = meter.connection, channel_name
        meter.connection_process = PROCESS_ID
        meter.save(update_fields=["connection", "connection_process"])
    return previous if previous != channel_name else ""


def meter_connection_take(
    *, meter_id: str, token: str, channel_name: str
) -> tuple[MeterIdentity | None, str]:
    """Look the token up again, for a rotation, deactivation or cut-off since the first
    lookup of a connect; if it is still this active meter's, make this its connection
    (as meter_connection_open). Returns the meter as looked up now (None: the token is
    no one's) and the connection it replaces ("" if none)."""
    if connection.vendor != "postgresql":  # SQLite (`make run`): one writer anyway
        again = meter_for_token(token=token)
        if again is None or not again.active:
            return again, ""
        return again, meter_connection_open(meter_id=meter_id, channel_name=channel_name)
    web_presence_start()
    params = {
        "meter": meter_id,
        "token_hash": secret_hash(token),
        "channel": channel_name,
        "process": PROCESS_ID,
    }
    with connection.cursor() as cursor:
        cursor.execute(_TAKE, params)
        row = cursor.fetchone()
    if row is None:  # refused: which way, for the close code
        return meter_for_token(token=token), ""
    account_id, kind, previous, cut_off, balance = row
    again = MeterIdentity(meter_id, account_id, kind, True, cut_off, Decimal(balance))
    return again, previous if previous != channel_name else ""


def meter_connection_close(*, meter_id: str, channel_name: str) -> bool:
    """Mark the meter offline if this was its current connection; True if it was."""
    offline = meter_offline_mark(meter_id=meter_id, channel_name=channel_name, reason=DISCONNECTED)
    return offline is not None
