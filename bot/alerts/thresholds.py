"""What each rule's threshold measures and the range it may take, as data: the Settings view shows and checks it,
and every threshold loaded (the rules file, a value stored from Slack before these bounds) is kept inside it.

A threshold outside its range is not a setting but a fault: 0 failed checks in a row, a LIMIT past bigint, a
window reaching before year 1 all stopped the evaluation. Each maximum is the largest value that still means
something for its rule, far below anything that overflows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

from bot.alerts.probe import PROBE_TIMEOUT

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Threshold:
    """A rule's threshold: its unit (the view's hint), whether it counts things, and its range."""

    unit: str
    low: float
    high: float
    whole: bool = False  # counts are whole numbers

    def contains(self, value: float) -> bool:
        """Whether the value is one this rule can judge with (NaN is not)."""
        return self.low <= value <= self.high

    def range_text(self) -> str:
        """"a whole number from 1 to 60", as the view's error says it."""
        return f"{'a whole number' if self.whole else 'a number'} from {self.low:g} to {self.high:g}"


COUNT_MAX: Final = 100_000  # failed payments, sync failures, events: more than any store sees in a rule's window
WEEK_HOURS: Final = 168.0  # a week of silence is as long as a no-sales rule can usefully wait

# The rhythm rules (sales_stopped, sales_low_today) have no threshold: their parameters live in the rules file.
THRESHOLDS: Final = {
    # Probed once a minute: an hour of failures in a row is the longest "down" worth waiting for.
    "site_down": Threshold("failed checks in a row", 1, 60, whole=True),
    "payment_failures_critical": Threshold("failed payments within the rule's window", 1, COUNT_MAX, whole=True),
    "no_sales": Threshold("business hours without a sale", 1, WEEK_HOURS),
    # A probe slower than its timeout counts as failed, so a higher threshold could never fire.
    "site_slow": Threshold("seconds to answer", 0.5, PROBE_TIMEOUT),
    "payment_failures_warning": Threshold("failed payments within the rule's window", 1, COUNT_MAX, whole=True),
    # Rates may be 0 ("any failure", their minimum attempts still apply) up to 1 (only the count rule speaks).
    "payment_failure_rate": Threshold("share of attempts that failed, 0.10 = 10 %", 0, 1),
    "sync_failures": Threshold("sync failures in an hour", 1, COUNT_MAX, whole=True),
    "webhook_errors": Threshold("share of webhooks refused, 0.01 = 1 %", 0, 1),
    "webhook_silence": Threshold("events the webhook missed", 1, COUNT_MAX, whole=True),
    "delivery_stuck": Threshold("minutes a message has waited for Slack", 1, 24 * 60),
    "dispute_opened": Threshold("disputes opened in a day", 1, 1000, whole=True),
    "no_order_1h": Threshold("business hours without an order", 1, WEEK_HOURS),
}


def bounded(rule: str, value: float, *, source: str) -> float:
    """The threshold kept inside its rule's range, with a warning naming where an outside one came from (a value
    stored before the range existed must not stop the bot, nor every alert)."""
    limits = THRESHOLDS.get(rule)
    if limits is None or limits.contains(value):
        return value
    kept = limits.low if not value >= limits.low else limits.high  # NaN: the safest end, the lowest
    log.warning("%s: the %s threshold %r is outside %s; using %g", source, rule, value, limits.range_text(), kept)
    return kept
