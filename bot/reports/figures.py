"""What the daily reports say: their windows in the store's time zone and the figures, read in one snapshot."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final
from zoneinfo import ZoneInfo

from bot.alerts.rules_file import load_rules
from bot.config import Settings
from bot.currency import PER_CURRENCY, CurrencyChoice, StoreTotals, pending_of, store_series, store_totals
from bot.periods import local_midnight
from bot.reports.schedule import ReportKind, Slot, local_instant, slot_for
from bot.rhythm.load import RhythmCache, RhythmSource, pace_today
from bot.rhythm.pace import Pace
from bot.subscriptions.renewals import Renewals
from queries import errors, health, mrr, reports, sales, settlements, sketch, stripe_sync, subscriptions
from queries.executor import Executor
from queries.health import DeliveryErrors
from queries.mrr import MrrSummary
from queries.reports import ProductTotal, ReportAlert
from queries.sales import CurrencyTotal, TrendPoint

TOP_PRODUCTS: Final = 5
HOURS: Final = 24
DAY: Final = dt.timedelta(days=1)
WEEK: Final = dt.timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open range of instants [start, end)."""

    start: dt.datetime
    end: dt.datetime


@dataclass(frozen=True, slots=True)
class Comparison:
    """Completed orders and revenue per currency in a window and in the same local window a week earlier."""

    window: Window
    current: tuple[CurrencyTotal, ...]
    previous: tuple[CurrencyTotal, ...]
    store: StoreTotals | None = None  # the window in the store currency, when there is one (bot/currency.py)
    store_previous: StoreTotals | None = None


@dataclass(frozen=True, slots=True)
class HourlyRevenue:
    """Revenue per local hour of day (0–23) in one currency, for a day and the same weekday a week earlier.

    On a fall-back day both 01:00 hours add up in slot 1; on a spring-forward day slot 2 stays empty.
    """

    currency: str
    day: dt.date
    previous_day: dt.date
    current: tuple[int, ...]
    previous: tuple[int, ...]
    others: tuple[str, ...]  # currencies sold that day but not charted (never summed with this one)
    until: dt.time | None = None  # the current day is counted up to this local time
    store: bool = False  # `currency` is the store currency: every order in it (settled amounts), but `pending`
    pending: tuple[CurrencyTotal, ...] = ()  # the two days' orders not converted yet, not charted
    aside: tuple[CurrencyTotal, ...] = ()  # the two days' orders settled in another currency: never counted


@dataclass(frozen=True, slots=True)
class MorningFigures:
    """The morning report: the night, yesterday against a week earlier, alerts and findings."""

    slot: Slot
    now: dt.datetime
    overnight: Window
    overnight_totals: tuple[CurrencyTotal, ...]
    yesterday: Comparison
    alerts: tuple[ReportAlert, ...]  # critical and warning alerts that fired overnight
    findings: tuple[ReportAlert, ...]  # info-level findings since the previous morning report
    chart: HourlyRevenue
    subscriptions: MrrSummary | None = None  # MRR at report time against a week earlier (stores with subscriptions)
    renewals: tuple[CurrencyTotal, ...] | None = None  # yesterday's renewals, when SUBSCRIPTION_RENEWALS=report
    overnight_store: StoreTotals | None = None  # the night in the store currency, when there is one


@dataclass(frozen=True, slots=True)
class EveningFigures:
    """The evening report: the day so far, refunds, disputes, failures, and what still needs attention."""

    slot: Slot
    now: dt.datetime
    day: Comparison
    customers: int
    top_products: tuple[ProductTotal, ...]
    refunds: tuple[CurrencyTotal, ...]
    disputes: tuple[CurrencyTotal, ...]
    payment_failures: int
    firing: tuple[ReportAlert, ...]  # critical and warning alerts firing at the report time (or now, if earlier)
    delivery_errors: DeliveryErrors  # Slack delivery problems from local midnight to the report time
    chart: HourlyRevenue
    recovered: int = 0  # events the webhook missed that the Events API recovered today
    customers_error: float | None = None  # relative error bound when `customers` is an estimate
    customers_without_email: int = 0  # the day's orders with no email: `customers` cannot count theirs
    pace: Pace | None = None  # the day projected to midnight against a usual one, once there is a rhythm


Figures = MorningFigures | EveningFigures


def week_earlier(window: Window, tz: ZoneInfo) -> Window:
    """The same local window seven days earlier (DST-safe): a bound at a day's start moves to the start of the day a
    week earlier (where a day skips midnight it starts at 01:00, the other day still at 00:00), any other bound to
    the same wall-clock time."""
    def shift(t: dt.datetime) -> dt.datetime:
        local = t.astimezone(tz)
        if t == local_midnight(local.date(), tz):
            return local_midnight(local.date() - WEEK, tz)
        return local_instant(local.date() - WEEK, local.time(), tz)

    return Window(shift(window.start), shift(window.end))


def whole_day(day: dt.date, tz: ZoneInfo) -> Window:
    """A local calendar day: 23, 24 or 25 hours."""
    return Window(local_midnight(day, tz), local_midnight(day + DAY, tz))


def by_hour(points: list[TrendPoint], currency: str, tz: ZoneInfo) -> tuple[int, ...]:
    """Revenue of one currency per local hour of day."""
    hours = [0] * HOURS
    for p in points:
        if p.currency == currency:
            hours[p.bucket.astimezone(tz).hour] += p.revenue
    return tuple(hours)


def charted_currency(current: list[TrendPoint], previous: list[TrendPoint],
                     account: str | None = None) -> tuple[str, tuple[str, ...]]:
    """The currency the chart shows and the others sold: the Stripe account's when it was ever read, else the day's
    (or the week earlier's) with the most orders. Amounts in different currencies cannot be ranked without a rate,
    so revenue in minor units only breaks ties between equal counts."""
    totals: dict[str, tuple[int, int]] = {}
    for p in current or previous:
        orders, revenue = totals.get(p.currency, (0, 0))
        totals[p.currency] = (orders + p.orders, revenue + p.revenue)
    if account is None and not totals:
        return "USD", ()
    charted = account or max(totals, key=lambda code: (*totals[code], code))
    return charted, tuple(sorted({p.currency for p in current} - {charted}))


def store_by_hour(series: dict[dt.datetime, StoreTotals], tz: ZoneInfo) -> tuple[int, ...]:
    """Gross in the store currency per local hour of day."""
    hours = [0] * HOURS
    for bucket, st in series.items():
        hours[bucket.astimezone(tz).hour] += st.gross
    return tuple(hours)


async def _store_series(db: Executor, window: Window, tz: ZoneInfo, code: str,
                        with_fees: bool) -> dict[dt.datetime, StoreTotals]:
    points = await settlements.settled_trend(db, start=window.start, end=window.end, bucket="hour", tz=tz.key)
    return store_series(points, code, with_fees=with_fees)


async def hourly_revenue(db: Executor, *, current: Window, previous: Window, tz: ZoneInfo,
                         store: CurrencyChoice = PER_CURRENCY) -> HourlyRevenue:
    """The chart's figures: revenue per local hour of `current` and of `previous`, in the store currency when
    `store` gives one (orders not converted yet, or settled in another currency, left out and listed), else in the
    day's main currency."""
    day = current.start.astimezone(tz).date()
    until = None if current.end >= local_midnight(day + DAY, tz) else current.end.astimezone(tz).time()
    previous_day = previous.start.astimezone(tz).date()
    if (code := await store.read(db)) is not None:
        now_series = await _store_series(db, current, tz, code, store.from_stripe)
        then_series = await _store_series(db, previous, tz, code, store.from_stripe)
        both = [*now_series.values(), *then_series.values()]
        return HourlyRevenue(currency=code, day=day, previous_day=previous_day,
                             current=store_by_hour(now_series, tz), previous=store_by_hour(then_series, tz),
                             others=(), until=until, store=True, pending=pending_of(both),
                             aside=pending_of(both, aside=True))
    now_points = await sales.trend(db, start=current.start, end=current.end, bucket="hour", tz=tz.key)
    then_points = await sales.trend(db, start=previous.start, end=previous.end, bucket="hour", tz=tz.key)
    currency, others = charted_currency(now_points, then_points, await settlements.account_currency(db))
    return HourlyRevenue(currency=currency, day=day, previous_day=previous_day,
                         current=by_hour(now_points, currency, tz), previous=by_hour(then_points, currency, tz),
                         others=others, until=until)


async def in_store(db: Executor, window: Window, choice: CurrencyChoice, code: str | None) -> StoreTotals | None:
    """A window in the store currency `code` (None: no store currency, None back)."""
    if code is None:
        return None
    rows = await settlements.settled_totals(db, start=window.start, end=window.end)
    return store_totals(rows, code, with_fees=choice.from_stripe)


async def comparison(db: Executor, window: Window, settings: Settings) -> Comparison:
    """Totals of a window and of the same window a week earlier, in the store currency too when there is one."""
    before = week_earlier(window, settings.tz)
    choice = CurrencyChoice.of(settings)
    code = await choice.read(db)
    return Comparison(window=window,
                      current=tuple(await sales.window_totals(db, start=window.start, end=window.end)),
                      previous=tuple(await sales.window_totals(db, start=before.start, end=before.end)),
                      store=await in_store(db, window, choice, code),
                      store_previous=await in_store(db, before, choice, code))


def report_end(slot: Slot, now: dt.datetime, start: dt.datetime) -> dt.datetime:
    """Where a report's windows end: at its time, or at `now` when it is made before (figures so far), so that what
    it compares with a week earlier, and its pace, stop there too; never before `start` (a day not begun yet)."""
    return max(start, min(now, slot.scheduled_at))


async def previous_due(db: Executor, kind: ReportKind, slot: Slot, settings: Settings) -> dt.datetime:
    """When the report of `kind` before the morning `slot` was due: the latest recorded for yesterday (or, for an
    evening after a zone change, today) and due before `slot` — sent, or noted as missed, its notice having named
    that time — at the time in force then, so that the report's window starts where that one stopped whatever the
    Settings say now. None recorded (a fresh install; the bot down past its catch-up window): yesterday's time under
    today's Settings. Never further back: the morning also covers all of yesterday, and a "night" reaching to an older
    report would overlap it whole."""
    yesterday = slot.day - DAY
    last = yesterday if kind is ReportKind.MORNING else slot.day
    due = await reports.last_due(db, kind=kind.value, first=yesterday, last=last, before=slot.scheduled_at)
    return due if due is not None else slot_for(kind, yesterday, settings).scheduled_at


async def morning(db: Executor, slot: Slot, *, settings: Settings, now: dt.datetime) -> MorningFigures:
    """The morning report of `slot.day`: since the previous evening report (up to now, when made before its time),
    and all of yesterday."""
    tz, choice = settings.tz, CurrencyChoice.of(settings)
    yesterday = slot.day - DAY
    since_evening = await previous_due(db, ReportKind.EVENING, slot, settings)
    overnight = Window(since_evening, report_end(slot, now, since_evening))
    since_morning = await previous_due(db, ReportKind.MORNING, slot, settings)
    since_last_morning = Window(since_morning, report_end(slot, now, since_morning))
    day = whole_day(yesterday, tz)
    quiet = settings.subscription_renewals is Renewals.REPORT  # renewals pinged nowhere else: the report counts them
    renewals = tuple(await subscriptions.renewal_totals(db, start=day.start, end=day.end)) if quiet else None
    return MorningFigures(
        slot=slot, now=now, overnight=overnight,
        overnight_totals=tuple(await sales.window_totals(db, start=overnight.start, end=overnight.end)),
        overnight_store=await in_store(db, overnight, choice, await choice.read(db)),
        yesterday=await comparison(db, day, settings),
        alerts=tuple(await reports.alerts_between(db, start=overnight.start, end=overnight.end,
                                                  severities=("critical", "warning"))),
        findings=tuple(await reports.alerts_between(db, start=since_last_morning.start,
                                                    end=since_last_morning.end, severities=("info",))),
        chart=await hourly_revenue(db, current=day, previous=whole_day(yesterday - WEEK, tz), tz=tz, store=choice),
        subscriptions=await mrr.summary(db, now=overnight.end, since=overnight.end - 30 * DAY),
        renewals=renewals)


async def evening(db: Executor, slot: Slot, *, settings: Settings, now: dt.datetime,
                  rhythm: RhythmSource | None = None) -> EveningFigures:
    """The evening report of `slot.day`: local midnight up to the report time, or up to now when made before it
    (figures so far). What needs attention is read at that end too: the report of a past day lists that day's
    problems, not today's. Its pace reads the rhythm as `/sales` does (`rhythm`: the service's; without one, the
    [rhythm] parameters of ALERT_RULES_FILE), so the two say the same usual day."""
    rhythm = rhythm or RhythmSource(RhythmCache(), load_rules(settings.alert_rules_file).rhythm)
    midnight = local_midnight(slot.day, settings.tz)
    window = Window(midnight, report_end(slot, now, midnight))
    start, end = window.start, window.end
    dispute_rows = await reports.disputes(db, start=start, end=end)
    customers = await sketch.customers(db, start=start, end=end)
    day = await comparison(db, window, settings)
    store = day.store.currency if day.store is not None else None
    return EveningFigures(
        slot=slot, now=now, day=day, customers=customers.count, customers_error=customers.error,
        customers_without_email=customers.without_email,
        top_products=tuple(await reports.top_products(db, start=start, end=end, limit=TOP_PRODUCTS, store=store)),
        refunds=tuple(await sales.refunds(db, start=start, end=end)),
        disputes=tuple(CurrencyTotal(code, count, amount) for code, count, amount in dispute_rows),
        payment_failures=await errors.payment_failures(db, start=start, end=end),
        firing=tuple(await reports.firing_at(db, at=min(now, end))),
        delivery_errors=await health.delivery_errors(db, since=start, until=end),
        recovered=await stripe_sync.recovered_events(db, start=start, end=end),
        pace=await pace_today(db, now=end, tz=settings.tz, source=rhythm, currency=CurrencyChoice.of(settings)),
        # Today up to the report time against the whole same weekday a week earlier (how evenings go).
        chart=await hourly_revenue(db, current=window, previous=whole_day(slot.day - WEEK, settings.tz),
                                   tz=settings.tz, store=CurrencyChoice.of(settings)))


async def gather(db: Executor, slot: Slot, *, settings: Settings, now: dt.datetime,
                 rhythm: RhythmSource | None = None) -> Figures:
    """The report's figures; the caller reads them inside one snapshot transaction."""
    if slot.kind is ReportKind.MORNING:
        return await morning(db, slot, settings=settings, now=now)
    return await evening(db, slot, settings=settings, now=now, rhythm=rhythm)
