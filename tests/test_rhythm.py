"""The rhythm model, its judgments and the pace line, pure: simulated weeks in, with an injected `now`."""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import replace
from zoneinfo import ZoneInfo

from bot.blocks.elements import message
from bot.blocks.pace import pace_block, pace_text
from bot.rhythm.judge import (
    LowTodayParams,
    StoppedParams,
    Verdict,
    gap_threshold,
    low_today,
    poisson_cdf,
    stopped,
)
from bot.rhythm.model import Rhythm, RhythmParams, build, main_currency
from bot.rhythm.pace import project
from queries.rhythm import HourCount
from tests.blockkit import assert_valid_message

NY = ZoneInfo("America/New_York")
# Orders per hour on every day: quiet nights, a peak of 40 an hour at 20:00.
PROFILE = (2, 1, 1, 1, 1, 1, 2, 4, 8, 14, 20, 24, 22, 20, 18, 18, 20, 24, 30, 36, 40, 30, 16, 6)
TODAY = dt.date(2026, 6, 13)  # a Saturday


def weeks_of(weeks: int, *, scale: float = 1.0, seed: int | None = None, price: int = 2500) -> list[HourCount]:
    """`weeks` whole weeks before TODAY at PROFILE × scale per hour: exact counts, or Poisson with a seed."""
    rng = random.Random(seed)
    rows = []
    for n in range(1, 7 * weeks + 1):
        day = TODAY - dt.timedelta(days=n)
        for hour, rate in enumerate(PROFILE):
            count = round(rate * scale) if seed is None else _poisson(rng, rate * scale)
            if count:
                rows.append(HourCount(day, hour, "USD", count, count * price))
    return rows


def _poisson(rng: random.Random, mu: float) -> int:
    count, t = 0, rng.expovariate(mu)
    while t < 1:
        count, t = count + 1, t + rng.expovariate(mu)
    return count


def rhythm(weeks: int = 8, **kwargs: float) -> Rhythm:
    """The model built on TODAY's morning from `weeks` of exact history."""
    built = build(weeks_of(weeks, **kwargs), today=TODAY, first_day=TODAY - dt.timedelta(weeks=weeks),
                  params=RhythmParams())
    assert built is not None
    return built


def at(hour: int, minute: int = 0, day: dt.date = TODAY) -> dt.datetime:
    """A local time in New York, as UTC."""
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=NY).astimezone(dt.UTC)


def test_under_two_weeks_of_history_there_is_no_rhythm() -> None:
    """Thirteen days of sales: no rhythm (the fixed rules apply); fourteen: a rhythm."""
    rows = weeks_of(2)
    assert build(rows, today=TODAY, first_day=TODAY - dt.timedelta(days=13), params=RhythmParams()) is None
    assert build(rows, today=TODAY, first_day=TODAY - dt.timedelta(days=14), params=RhythmParams()) is not None
    assert build([], today=TODAY, first_day=None, params=RhythmParams()) is None


def test_expected_rates_follow_the_history_hour_by_hour() -> None:
    """Eight identical weeks: every weekday-hour expects exactly its history, revenue included."""
    r = rhythm()
    assert [round(e.orders, 6) for e in r.rates[TODAY.weekday()]] == list(PROFILE)
    assert r.rate_at(at(20, 30), NY).revenue == 40 * 2500
    assert r.usual_day(0).orders == sum(PROFILE)


def test_an_outage_day_and_a_promotion_day_are_left_out() -> None:
    """One Saturday with no sales and one at triple volume do not move a busy store's Saturday."""
    rows = [c for c in weeks_of(8) if c.day != TODAY - dt.timedelta(days=7)]
    rows = [replace(c, orders=c.orders * 3) if c.day == TODAY - dt.timedelta(days=14) else c for c in rows]
    r = build(rows, today=TODAY, first_day=TODAY - dt.timedelta(weeks=8), params=RhythmParams())
    assert r is not None and round(r.rates[TODAY.weekday()][20].orders, 6) == 40


def _flat_with_lucky_hour(per_hour: int) -> float:
    """Saturday 03:00 as modelled when every hour sells `per_hour`, except one more on three of 8 Saturdays."""
    rows = [HourCount(TODAY - dt.timedelta(days=n), h, "USD", per_hour + (n in (7, 14, 21) and h == 3), 100)
            for n in range(1, 57) for h in range(24)]
    r = build(rows, today=TODAY, first_day=TODAY - dt.timedelta(weeks=8), params=RhythmParams())
    assert r is not None
    return r.rates[TODAY.weekday()][3].orders


def test_thin_history_leans_on_the_all_days_profile() -> None:
    """At 1 sale an hour, three lucky Saturdays (+37.5 % raw) barely move the hour; at 40 an hour, +1 each moves
    it almost fully: the profile counts as 1 / (spread² · rate) pseudo-days."""
    assert 1.0 < _flat_with_lucky_hour(1) < 1.0 + 0.375 / 2
    assert 40.0 + 0.375 * 0.9 < _flat_with_lucky_hour(40) < 40.375


def test_a_dst_day_counts_its_own_hours() -> None:
    """The spring-forward Sunday expects 23 hours of sales, the fall-back one 25 (one 01:00 hour twice)."""
    r = rhythm()
    spring, fall = dt.date(2026, 3, 8), dt.date(2026, 11, 1)
    assert r.between(at(0, day=spring), at(0, day=spring + dt.timedelta(days=1)), NY).orders == sum(PROFILE) - 1
    assert r.between(at(0, day=fall), at(0, day=fall + dt.timedelta(days=1)), NY).orders == sum(PROFILE) + 1


def test_poisson_lower_tail() -> None:
    """The summed tail agrees with the textbook formula, and stays finite far out."""
    assert math.isclose(poisson_cdf(3, 2.5), sum(math.exp(-2.5) * 2.5 ** i / math.factorial(i) for i in range(4)))
    assert poisson_cdf(0, 5) == math.exp(-5) and poisson_cdf(-1, 5) == 0.0
    assert 0 < poisson_cdf(4000, 5000) < 1e-40


def opens(verdict: Verdict | None) -> bool:
    """Whether the verdict opens an alert (one that holds past its hours only keeps one open)."""
    return verdict is not None and verdict.opens


def first_firing(r: Rhythm, params: StoppedParams, *, stop: dt.datetime,
                 every: dt.timedelta = dt.timedelta(minutes=1)) -> dt.timedelta:
    """Sales stop at `stop` (the last sale then): how long until a check (one a minute by default) fires."""
    last, now = stop, stop
    while not opens(stopped(r, params, last_sale=last, now=now, tz=NY)):
        now += every
        assert now - stop < dt.timedelta(days=1)
    return now - stop


def test_stopped_fires_at_peak_after_the_improbable_gap_and_says_so() -> None:
    """At 40 sales an hour a stop is called after -ln(α) expected gaps (plus at most a check), in plain words."""
    r = rhythm()
    gaps = first_firing(r, StoppedParams(), stop=at(20)) / dt.timedelta(minutes=1.5)  # a sale every 1.5 min
    assert gap_threshold(r, StoppedParams()) <= gaps <= gap_threshold(r, StoppedParams()) + 1
    verdict = stopped(r, StoppedParams(), last_sale=at(20), now=at(20, 38), tz=NY)
    assert verdict is not None
    assert verdict.summary == "No sale for 38 min; at this hour a sale usually comes every 1 min 30 s"


def test_stopped_within_three_expected_gaps_when_alpha_allows() -> None:
    """With α = 0.05 (a gap of three expected sales, at the price bench/rhythm.py shows), it fires within three."""
    params = StoppedParams(alpha=0.05, false_alarms_per_30_days=1e9)
    every = dt.timedelta(seconds=30)
    assert first_firing(rhythm(), params, stop=at(20), every=every) <= dt.timedelta(minutes=3 * 1.5)


def test_stopped_never_opens_in_a_quiet_hour_but_keeps_holding() -> None:
    """At 03:00 (1 sale an hour, under half the peak) even a six-hour silence opens no alert — but the gap still
    holds, so an alert the evening opened stays open until a sale comes, rather than reading as resolved."""
    r = rhythm()
    night = stopped(r, StoppedParams(), last_sale=at(21), now=at(3, 0, TODAY + dt.timedelta(days=1)), tz=NY)
    assert night is not None and not night.opens and night.summary.startswith("No sale for 6 h")
    assert stopped(r, StoppedParams(), last_sale=at(2, 55, TODAY + dt.timedelta(days=1)),
                   now=at(3, 0, TODAY + dt.timedelta(days=1)), tz=NY) is None  # a sale came
    assert stopped(r, StoppedParams(), last_sale=None, now=at(20), tz=NY) is None


def test_low_today_fires_on_a_bad_day_not_a_normal_one() -> None:
    """By 15:00 a usual Saturday has 139 sales: 60 is unusually low, 130 is a normal day."""
    r, now = rhythm(), at(15)
    assert low_today(r, LowTodayParams(), orders=130, now=now, tz=NY) is None
    verdict = low_today(r, LowTodayParams(), orders=60, now=now, tz=NY)
    assert verdict is not None
    assert verdict.summary == "60 sales today by 15:00; a usual Saturday has 139 by then (43% of usual)"
    assert low_today(r, LowTodayParams(), orders=0, now=at(1), tz=NY) is None  # 2 expected: too few to judge


def test_stopped_and_low_today_stay_quiet_on_simulated_weeks() -> None:
    """Four simulated Poisson weeks judged every 5 minutes against the rhythm of the 8 weeks before: no alert."""
    r = rhythm()
    rng = random.Random(7)
    for day in (TODAY + dt.timedelta(days=n) for n in range(28)):
        sales = sorted(at(h, day=day) + dt.timedelta(hours=rng.random())
                       for h, rate in enumerate(PROFILE) for _ in range(_poisson(rng, rate)))
        for minute in range(0, 24 * 60, 5):
            now = at(0, day=day) + dt.timedelta(minutes=minute)
            before = [t for t in sales if t < now]
            last = before[-1] if before else now - dt.timedelta(minutes=30)
            assert not opens(stopped(r, StoppedParams(), last_sale=last, now=now, tz=NY))
            assert low_today(r, LowTodayParams(), orders=len(before), now=now, tz=NY) is None


def test_pace_projects_today_and_renders_valid_block_kit() -> None:
    """A Saturday running 8 % above usual by 15:00 is on pace for about 8 % more, said in money."""
    r = rhythm()
    usual_so_far = r.between(at(0), at(15), NY)
    p = project(r, orders=round(usual_so_far.orders * 1.08), revenue=round(usual_so_far.revenue * 1.08),
                now=at(15), tz=NY)
    assert p.usual_revenue == sum(PROFILE) * 2500 and p.weekday == "Saturday"
    assert p.usual_revenue < p.projected_revenue < p.usual_revenue * 1.08
    assert pace_text(p).startswith("📈 On pace for *$") and "a usual Saturday is $8,975.00 (▲ " in pace_text(p)
    assert_valid_message(message("pace", [pace_block(p)]))
    quiet = project(r, orders=0, revenue=0, now=at(0), tz=NY)
    assert "(= 0%)" in pace_text(quiet)  # at midnight, the usual day itself
    assert "(USD orders)" not in pace_text(p)
    mixed = project(r, orders=10, revenue=9000, now=at(15), tz=NY, one_currency_of_several=True)
    assert pace_text(mixed).startswith("📈 On pace for *$") and "* (USD orders) — a usual Saturday" in pace_text(mixed)


def test_the_rhythms_currency_is_the_one_with_most_orders_not_most_minor_units() -> None:
    """Without a store currency the rhythm follows one currency: $400.00 in 20 orders is the store's business, not
    ₩50,000 (about $36) in 2 orders, though 50,000 minor units outnumber 40,000 (the money review's finding for the
    JSON API, held here too)."""
    day = dt.date(2026, 3, 2)
    counts = [HourCount(day, 10, "USD", orders=20, revenue=40_000), HourCount(day, 11, "KRW", orders=2, revenue=50_000)]
    assert main_currency(counts) == "USD"
    assert main_currency([HourCount(day, 10, "EUR", 3, 900), HourCount(day, 10, "USD", 3, 1200)]) == "USD"
