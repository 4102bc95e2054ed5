"""Credit control's rules (CONTRACT.md section 6), decided charge by charge. Pure: no Django.

A rating batch holds its accounts' locks. For each account it makes a `Watch` from
what it loaded (the balance, the cut-off line, the alerts, the open periods' totals
before the batch), tells it every charge in the order they are rated, and writes
back what the watch decided: alerts fired (with the figure at the crossing), the
balance consumed, a cut-off. The same rules therefore hold whatever the split of
readings into frames and batches.

- spend_above / usage_above fire when the account's (or the meter's) period total
  reaches the threshold, at most once per alert and period (a later period fires
  again); a total that falls back (a volume tariff reprices) does not re-arm them.
- balance_below fires when the balance falls to or below the threshold, then waits
  until a credit lifts the balance above it again (`credit_rearms`).
- The cut-off happens at the charge that takes the balance to or below `cutoff_at`,
  once; a credit that lifts the balance above it restores the account.
A balance exists only once the account has had a credit; before that, balance alerts
and the cut-off do not apply (a postpaid account).
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

SPEND_ABOVE = "spend_above"
USAGE_ABOVE = "usage_above"
BALANCE_BELOW = "balance_below"
KINDS = (SPEND_ABOVE, USAGE_ABOVE, BALANCE_BELOW)


@dataclass
class AlertRule:
    """An alert's rule and its state (a copy of the row, written back when it fires)."""

    id: str
    kind: str
    threshold: Decimal
    meter_id: str | None = None
    fired_period_start: datetime | None = None  # spend/usage: once per period
    armed: bool = True  # balance_below

    def fires(self, *, value: Decimal, period_start: datetime) -> bool:
        if self.kind == BALANCE_BELOW:
            return self.armed and value <= self.threshold
        return self.fired_period_start != period_start and value >= self.threshold

    def fired(self, period_start: datetime) -> None:
        if self.kind == BALANCE_BELOW:
            self.armed = False
        else:
            self.fired_period_start = period_start


@dataclass(frozen=True)
class Fired:
    """An alert that fired, with the figure measured after the charge that crossed."""

    alert: AlertRule
    value: Decimal
    period_start: datetime


@dataclass
class Totals:
    amount: Decimal = Decimal(0)
    usage: Decimal = Decimal(0)


@dataclass
class Watch:
    """One account's credit state through a batch: see the module docstring."""

    balance: Decimal | None  # None: no credit yet
    cutoff_at: Decimal | None
    cut_off: bool
    alerts: list[AlertRule] = field(default_factory=list)
    # The account's totals over all its meters, by period start (before the batch, then
    # after each charge).
    account_totals: dict[datetime, Totals] = field(default_factory=lambda: defaultdict(Totals))
    consumed: Decimal = Decimal(0)  # by this batch
    fired: list[Fired] = field(default_factory=list)
    cut_off_now: bool = False  # this batch crossed the cut-off line
    cut_off_balance: Decimal | None = None  # the balance after the charge that crossed it

    def charged(
        self,
        *,
        meter_id: str,
        period_start: datetime,
        amount: Decimal,
        usage: Decimal,
        meter: Totals,
    ) -> None:
        """One charge (`meter`: the meter's period totals after it), then every rule it
        may cross."""
        account = self.account_totals[period_start]
        account.amount += amount
        account.usage += usage
        if self.balance is not None:
            self.balance -= amount
            self.consumed += amount
        for alert in self.alerts:
            value = self._value(alert, account=account, meter=meter, meter_id=meter_id)
            if value is not None and alert.fires(value=value, period_start=period_start):
                alert.fired(period_start)
                self.fired.append(Fired(alert, value, period_start))
        if not self.cut_off and cut_off_state(balance=self.balance, cutoff_at=self.cutoff_at):
            self.cut_off = self.cut_off_now = True
            self.cut_off_balance = self.balance

    def _value(self, alert: AlertRule, *, account: Totals, meter: Totals, meter_id: str):
        """The figure the alert watches, after this charge (None: not this charge's)."""
        if alert.kind == BALANCE_BELOW:
            return self.balance
        if alert.meter_id is not None and alert.meter_id != meter_id:
            return None
        totals = account if alert.meter_id is None else meter
        return totals.amount if alert.kind == SPEND_ABOVE else totals.usage


def credit_rearms(alert: AlertRule, *, balance: Decimal) -> bool:
    """Whether a credit leaving `balance` re-arms a fired balance alert."""
    return alert.kind == BALANCE_BELOW and not alert.armed and balance > alert.threshold


def cut_off_state(*, balance: Decimal | None, cutoff_at: Decimal | None) -> bool:
    """Whether an account with this balance and cut-off line is cut off."""
    return balance is not None and cutoff_at is not None and balance <= cutoff_at
