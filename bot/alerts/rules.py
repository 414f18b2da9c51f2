"""The alert rules, as data: what each measures, its threshold and window, its severity and family."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from zoneinfo import ZoneInfo

from bot.alerts.business_time import business_time_between
from bot.blocks.message import truncate
from bot.config import HourWindow
from bot.periods import local_midnight
from bot.rhythm import judge
from bot.rhythm.judge import LowTodayParams, StoppedParams
from bot.rhythm.model import DEFAULT_PARAMS, Rhythm, RhythmParams
from queries import alerts as q
from queries import health, sales, stripe_sync
from queries.executor import Executor

TOP_ERROR_KINDS = 3  # webhook error kinds the alert names


class Severity(StrEnum):
    """How loud an alert is."""

    CRITICAL = "critical"  # any hour, mentions on-call
    WARNING = "warning"  # held outside business hours
    INFO = "info"  # goes into the next daily report only


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule's condition holds, for these labels, with this measured value."""

    summary: str
    value: float | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    opens: bool = True  # False: it keeps an open alert open but opens none now ("sales stopped" past its hours)


@dataclass(frozen=True, slots=True)
class Context:
    """What a check may know besides the database."""

    now: dt.datetime
    tz: ZoneInfo
    business_hours: HourWindow
    site_url: str | None
    rhythm: Rhythm | None = None  # None: under two weeks of history, the fixed rules stand in
    business_days: frozenset[int] = frozenset(range(7))  # weekday numbers, Monday 0 (BUSINESS_DAYS)
    quiet_hours: HourWindow | None = None  # QUIET_HOURS: warnings wait, criticals post without the mention

    def in_business_hours(self) -> bool:
        """Whether now is a business day, inside business hours, in the store's zone."""
        return self.business_hours.open_on(self.now.astimezone(self.tz), self.business_days)

    def business_day(self) -> bool:
        """Whether the business day now belongs to is one of the business days: today in the store's zone, or
        yesterday in the hours past midnight of an overnight window (18:00-02:00), as HourWindow.open_on counts."""
        local, hours = self.now.astimezone(self.tz), self.business_hours
        after_midnight = hours.start > hours.end and local.time() < hours.end
        opened = local.date() - dt.timedelta(days=1) if after_midnight else local.date()
        return opened.weekday() in self.business_days

    def quiet(self) -> bool:
        """Whether now falls inside the quiet hours."""
        return self.quiet_hours is not None and self.quiet_hours.contains(self.now.astimezone(self.tz).time())


Check = Callable[[Executor, "Rule", Context], Awaitable[list[Finding]]]


@dataclass(frozen=True, slots=True)
class Rule:
    """One alert rule."""

    name: str
    family: str  # a firing critical inhibits the warnings of its family
    severity: Severity
    title: str
    threshold: float
    window: dt.timedelta
    check: Check
    business_hours_only: bool = False
    needs_site: bool = False
    enabled: bool = True
    min_attempts: int = 0  # for rates: don't judge on a handful of attempts
    min_count: int = 0  # for failure rates: nor on fewer failures than this
    needs_rhythm: bool = False  # judged against the store's rhythm: silent while there is none
    only_without_rhythm: bool = False  # a fixed rule the rhythm rules replace once the store has a rhythm
    params: StoppedParams | LowTodayParams | None = None  # a rhythm rule's own parameters
    # Prometheus's `keep_firing_for`: an alert resolves only once its condition has been false this long, so a
    # measure wavering around its line is one alert, not one per crossing.
    keep_firing_for: dt.timedelta = dt.timedelta()
    # The condition is "this happened within the window" (a dispute, a sync failure): resolved by hand, the alert
    # stays resolved until what it counted has left the window, not merely for MANUAL_RESOLVE_GRACE.
    counts_events: bool = False

    def resolve_hold(self, grace: dt.timedelta) -> dt.timedelta:
        """How long a resolve by hand holds while the condition persists: `grace` (time for a fix to take), or for
        counted events until what was counted has left the window (a dispute resolved by hand is not new later)."""
        return max(grace, self.window) if self.counts_events else grace

    def applies(self, rhythm: Rhythm | None) -> bool:
        """Whether the rule is judged with or without a rhythm (otherwise its findings are none)."""
        return not (self.needs_rhythm and rhythm is None) and not (self.only_without_rhythm and rhythm is not None)


async def payment_failures(db: Executor, rule: Rule, ctx: Context) -> list[Finding]:
    """N or more failed payments in the window."""
    count = await q.count_payment_failures(db, start=ctx.now - rule.window, end=ctx.now)
    minutes = int(rule.window.total_seconds() // 60)
    return [Finding(f"{count} payment failures in the last {minutes} min", count)] if count >= rule.threshold else []


async def payment_failure_rate(db: Executor, rule: Rule, ctx: Context) -> list[Finding]:
    """More than threshold (a fraction) of payment attempts failed in the window."""
    start = ctx.now - rule.window
    failed = await q.count_payment_failures(db, start=start, end=ctx.now)
    attempts = failed + await q.count_payments_succeeded(db, start=start, end=ctx.now)
    if attempts < max(rule.min_attempts, 1) or failed < rule.min_count or failed / attempts <= rule.threshold:
        return []
    return [Finding(f"{failed / attempts:.0%} of payment attempts failed in the last hour ({failed} of {attempts})",
                    failed / attempts)]


async def no_sales(db: Executor, rule: Rule, ctx: Context) -> list[Finding]:
    """No sale (completed, or refunded since) for `threshold` hours of business time."""
    last = await sales.last_sale_at(db)
    if last is None:
        return []  # a store with no orders yet is not an outage
    quiet = business_time_between(last, ctx.now, tz=ctx.tz, hours=ctx.business_hours, days=ctx.business_days)
    if quiet < dt.timedelta(hours=rule.threshold):
        return []
    hours = quiet.total_seconds() / 3600
    return [Finding(f"No sales for {hours:.1f} business hours (last order {last.astimezone(ctx.tz):%a %H:%M})",
                    hours)]


async def sales_stopped(db: Executor, rule: Rule, ctx: Context) -> list[Finding]:
    """The gap since the last sale is improbable at the store's usual rate (see bot.rhythm.judge.stopped)."""
    if ctx.rhythm is None or not isinstance(rule.params, StoppedParams):
        return []
    last = await sales.last_sale_at(db)
    verdict = judge.stopped(ctx.rhythm, rule.params, last_sale=last, now=ctx.now, tz=ctx.tz)
    return [Finding(verdict.summary, verdict.value, opens=verdict.opens)] if verdict else []


async def sales_low_today(db: Executor, rule: Rule, ctx: Context) -> list[Finding]:
    """Today's sales so far are far below a usual day's by now (see bot.rhythm.judge.low_today)."""
    if ctx.rhythm is None or not isinstance(rule.params, LowTodayParams):
        return []
    midnight = local_midnight(ctx.now.astimezone(ctx.tz).date(), ctx.tz)
    orders = sum(t.orders for t in await sales.window_totals(db, start=midnight, end=ctx.now))
    verdict = judge.low_today(ctx.rhythm, rule.params, orders=orders, now=ctx.now, tz=ctx.tz)
    return [Finding(verdict.summary, verdict.value)] if verdict else []


async def site_down(db: Executor, rule: Rule, ctx: Context) -> list[Finding]:
    """The last `threshold` probes of SITE_URL all failed."""
    n = int(rule.threshold)
    probes = await q.last_probes(db, limit=n)
    if len(probes) < n or any(p.ok for p in probes):
        return []
    reason = probes[0].error or f"HTTP {probes[0].status}"
    return [Finding(f"{ctx.site_url} failed {n} checks in a row: {reason}", n, {"url": ctx.site_url or ""})]


async def site_slow(db: Executor, rule: Rule, ctx: Context) -> list[Finding]:
    """The last probe answered, but slower than `threshold` seconds."""
    probes = await q.last_probes(db, limit=1)
    if not probes or not probes[0].ok or (probes[0].elapsed_ms or 0) <= rule.threshold * 1000:
        return []
    seconds = (probes[0].elapsed_ms or 0) / 1000
    return [Finding(f"{ctx.site_url} took {seconds:.1f} s to answer", seconds, {"url": ctx.site_url or ""})]


async def sync_failures(db: Executor, rule: Rule, ctx: Context) -> list[Finding]:
    """Sync failures (CRM and the like) reported by the store in the window."""
    count = await q.count_sync_failures(db, start=ctx.now - rule.window, end=ctx.now)
    return [Finding(f"{count} sync failures in the last hour", count)] if count >= rule.threshold else []


async def webhook_errors(db: Executor, rule: Rule, ctx: Context) -> list[Finding]:
    """Error rate over threshold (a fraction), or more than `min_attempts` errors, in the window; the summary
    names the three commonest kinds of what it counted (webhook event types, the app's reporting components) with
    their newest error, as the original guide's alert does. The rate is errors over everything counted: webhooks
    and the app's error reports alike (the app reports only errors), so it never passes 100 %."""
    n = await q.webhook_counts(db, start=ctx.now - rule.window, end=ctx.now)
    errors, counted = n.webhook_errors + n.app_errors, n.webhooks + n.app_errors
    rate = errors / counted if counted else 0.0
    if errors == 0 or (rate <= rule.threshold and errors <= rule.min_attempts):
        return []
    top = await q.error_kinds(db, start=ctx.now - rule.window, end=ctx.now, limit=TOP_ERROR_KINDS)
    kinds = "; ".join(f"{kind} ×{count}" + (f": {truncate(' '.join(error.split()), 80)}" if error else "")
                      for kind, count, error in top)
    head = (f"{errors} errors in the last hour ({rate:.1%} of {counted}: {n.webhook_errors} of {n.webhooks} webhooks"
            f" failed, {n.app_errors} errors reported by the app)" if n.app_errors else
            f"{errors} webhook errors in the last hour ({rate:.1%} of {n.webhooks} webhooks)")
    return [Finding(head + (f" — {kinds}" if kinds else ""), errors)]


async def disputes(db: Executor, rule: Rule, ctx: Context) -> list[Finding]:
    """Disputes opened in the window, once there are `threshold` of them (1: every dispute): one alert per dispute,
    so each is answered and closed on its own."""
    found = await q.recent_disputes(db, start=ctx.now - rule.window, end=ctx.now)
    if len(found) < rule.threshold:
        return []
    return [Finding(f"Dispute {d.id} opened: {(d.reason or 'no reason given').replace('_', ' ')}", d.amount,
                    {"dispute": d.id}) for d in found]


async def webhook_silence(db: Executor, rule: Rule, ctx: Context) -> list[Finding]:
    """The Events API showed `threshold` or more events the webhook never delivered, and no webhook came."""
    since = ctx.now - rule.window
    recovered = await stripe_sync.recovered_recent(db, since=since)
    if recovered < max(rule.threshold, 1):
        return []
    last = await stripe_sync.last_stripe_webhook_at(db)
    if last is not None and last >= since:
        return []
    minutes = int(rule.window.total_seconds() // 60)
    heard = f"last one {last.astimezone(ctx.tz):%a %H:%M}" if last else "none received yet"
    return [Finding(f"No Stripe webhook for over {minutes} min ({heard}) while the Events API showed {recovered}"
                    " events — check the webhook endpoint in the Stripe dashboard", recovered)]


async def delivery_stuck(db: Executor, rule: Rule, ctx: Context) -> list[Finding]:
    """Messages for a channel due for `threshold` minutes and still not in Slack (the bot removed from it, the
    channel archived, Slack down): one alert per channel. Not for the alerts channel: its alert could not reach
    anyone, and /health says it."""
    stuck = await health.stuck_channels(db, now=ctx.now, since=ctx.now - dt.timedelta(minutes=rule.threshold))
    return [Finding(f"{s.waiting} messages for #{s.channel} not delivered for {int(minutes)} min"
                    + (f" — Slack says `{s.error}`" if s.error else ""), minutes, {"channel": s.channel})
            for s in stuck if s.channel != "alerts"
            for minutes in [(ctx.now - s.due_since).total_seconds() / 60]]


HOUR = dt.timedelta(hours=1)
FLAP_HOLD = dt.timedelta(minutes=10)
# Failures counted in a 10-minute window drop out of it all at once: declines coming back within 15 minutes of
# the count falling below the line (every 12 minutes, as card testing does) are the same incident.
PAYMENT_FLAP_HOLD = dt.timedelta(minutes=15)
# A message due this long and not in Slack means delivery is stuck, not slow (a retry waits 3 s; a held channel 30 s).
DELIVERY_STUCK_MINUTES = 10
DEFAULT_RULES: tuple[Rule, ...] = (
    # A site failing most checks but answering one now and then is one outage, not a page every few minutes:
    # it resolves once it has answered for FLAP_HOLD (every check a minute apart, ten good ones in a row).
    Rule("site_down", "site", Severity.CRITICAL, "Site down", 3, dt.timedelta(minutes=3), site_down, needs_site=True,
         keep_firing_for=FLAP_HOLD),
    Rule("payment_failures_critical", "payment_failures", Severity.CRITICAL, "Payment failures spiking", 10,
         dt.timedelta(minutes=10), payment_failures, keep_firing_for=PAYMENT_FLAP_HOLD),
    Rule("no_sales", "sales", Severity.CRITICAL, "No sales", 4, dt.timedelta(hours=4), no_sales,
         business_hours_only=True, only_without_rhythm=True),
    # threshold/window unused: the rhythm rules' parameters are in `params` (README, "Choosing alert rules").
    Rule("sales_stopped", "sales", Severity.CRITICAL, "Sales stopped", 0, HOUR, sales_stopped, needs_rhythm=True,
         params=StoppedParams()),
    Rule("site_slow", "site", Severity.WARNING, "Site slow", 3, dt.timedelta(minutes=1), site_slow, needs_site=True,
         keep_firing_for=FLAP_HOLD),
    # A busy store fails 3 payments in 10 minutes every hour (4 % of 50 attempts): once the rhythm knows the
    # store's volume, the rate rule below judges failures instead.
    Rule("payment_failures_warning", "payment_failures", Severity.WARNING, "Payment failures", 3,
         dt.timedelta(minutes=10), payment_failures, only_without_rhythm=True, keep_firing_for=PAYMENT_FLAP_HOLD),
    Rule("payment_failure_rate", "payment_failures", Severity.WARNING, "Payment failure rate high", 0.10, HOUR,
         payment_failure_rate, min_attempts=10, min_count=5),
    # A slow day hovers around its line for hours: one warning for it, not one per crossing (bench/rhythm.py).
    Rule("sales_low_today", "sales", Severity.WARNING, "Sales unusually low today", 0, HOUR, sales_low_today,
         needs_rhythm=True, params=LowTodayParams(), keep_firing_for=2 * HOUR),
    Rule("sync_failures", "sync", Severity.WARNING, "Sync failures", 1, HOUR, sync_failures, counts_events=True),
    Rule("webhook_errors", "webhooks", Severity.WARNING, "Webhook errors", 0.01, HOUR, webhook_errors,
         min_attempts=5, counts_events=True),
    Rule("webhook_silence", "webhooks", Severity.WARNING, "Stripe webhook silent", 1, HOUR, webhook_silence),
    Rule("delivery_stuck", "delivery", Severity.WARNING, "Slack delivery stuck", DELIVERY_STUCK_MINUTES,
         dt.timedelta(minutes=DELIVERY_STUCK_MINUTES), delivery_stuck),
    Rule("dispute_opened", "disputes", Severity.WARNING, "Dispute opened", 1, dt.timedelta(hours=24), disputes,
         counts_events=True),
    Rule("no_order_1h", "sales", Severity.INFO, "No order for over an hour", 1, HOUR, no_sales,
         business_hours_only=True, only_without_rhythm=True),
)


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The rules in force and the lifecycle settings that go with them."""

    rules: tuple[Rule, ...] = DEFAULT_RULES
    repeat_interval: dt.timedelta = dt.timedelta(hours=4)
    mention: str = "<!here>"
    rhythm: RhythmParams = DEFAULT_PARAMS

    @property
    def delivery_stuck_after(self) -> dt.timedelta:
        """How long a message may wait for Slack before /health, the dashboard and the JSON call delivery stuck:
        the `delivery_stuck` rule's threshold, so they and its alert agree (on or off, the owner set it)."""
        minutes = next((r.threshold for r in self.rules if r.name == "delivery_stuck"), DELIVERY_STUCK_MINUTES)
        return dt.timedelta(minutes=minutes)
