"""Rhythm rules on simulated months: false alarms per 30 days and time to detect a full stop at peak. From the
repository root:

    python bench/rhythm.py [--sizes 5,50,500,5000] [--months 3] [--seed 1]

Pure Python, no database: per store size, 8 weeks of history then 30-day months of Poisson arrivals in
America/New_York (DST falls inside the history) with the demo seed's daily and weekly rhythm and a day-to-day
level that varies by ±10 % (lognormal) on top of Poisson, as real days do. The model is rebuilt each day from
the 8 weeks before it, exactly as `bot.rhythm.model.build` does from the rollups, and the rules' pure
judgments (`bot.rhythm.judge`) are checked every minute (ALERT_CHECK_INTERVAL_SECONDS' default) with the
injected time. False alarm: an alert starting (stopped or low-today) in a month without incidents. Detection:
each day, sales stop at the start of that weekday's peak hour; the delay until the first rhythm alert, in
expected gaps at that hour (goal: within three) and in minutes, next to what the fixed 4-hour rule would take.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import random
import statistics
import sys
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.alerts.rules import DEFAULT_RULES
from bot.demo.rhythm import DAY_LEVEL, WEEKDAY_HOURS, WEEKEND_HOURS
from bot.rhythm.judge import LowTodayParams, StoppedParams, low_today, stopped
from bot.rhythm.model import Rhythm, RhythmParams, build
from queries.rhythm import HourCount

TZ = ZoneInfo("America/New_York")
HISTORY_WEEKS = 8
MONTH_DAYS = 30
CHECK = dt.timedelta(seconds=60)
DAY_NOISE = 0.10
FIXED_NO_SALES_HOURS = 4
FIRST_DAY = dt.date(2026, 1, 12)  # a Monday; the history crosses the 8 March DST change
PRICE = 5000


def weight(day: dt.date, hour: int) -> float:
    """The demo seed's relative rate for a local weekday and hour."""
    profile = WEEKEND_HOURS if day.weekday() >= 5 else WEEKDAY_HOURS
    return DAY_LEVEL[day.weekday()] * profile[hour]


MEAN_DAY_WEIGHT = sum(weight(FIRST_DAY + dt.timedelta(days=d), h) for d in range(7) for h in range(24)) / 7


def simulate(per_day: float, days: list[dt.date], rng: random.Random) -> list[dt.datetime]:
    """Poisson arrivals, hour by local hour, each day's level drawn around 1."""
    out: list[dt.datetime] = []
    for day in days:
        level = rng.lognormvariate(0, DAY_NOISE)
        for hour in range(24):
            start = dt.datetime.combine(day, dt.time(hour), tzinfo=TZ).astimezone(dt.UTC)
            rate = per_day * level * weight(day, hour) / MEAN_DAY_WEIGHT / 3600
            t = rng.expovariate(rate)
            while t < 3600:
                out.append(start + dt.timedelta(seconds=t))
                t += rng.expovariate(rate)
    out.sort()
    return out


def hourly(arrivals: list[dt.datetime]) -> Counter[tuple[dt.date, int]]:
    """Orders per local (day, hour): what the rollup query returns."""
    counts: Counter[tuple[dt.date, int]] = Counter()
    for t in arrivals:
        local = t.astimezone(TZ)
        counts[(local.date(), local.hour)] += 1
    return counts


def rhythm_for(counts: Counter[tuple[dt.date, int]], today: dt.date) -> Rhythm:
    """The model as the bot would build it on the morning of `today`."""
    start = today - dt.timedelta(weeks=HISTORY_WEEKS)
    rows = [HourCount(d, h, "USD", n, n * PRICE) for (d, h), n in counts.items() if start <= d < today]
    rhythm = build(rows, today=today, first_day=FIRST_DAY, params=RhythmParams())
    assert rhythm is not None
    return rhythm


@dataclass(frozen=True, slots=True)
class Rules:
    """The parameters under test."""

    stopped: StoppedParams
    low: LowTodayParams
    keep: tuple[dt.timedelta, dt.timedelta] = (dt.timedelta(), dt.timedelta())  # each rule's keep_firing_for


def rule_keep(name: str) -> dt.timedelta:
    """The default rule's keep_firing_for, as the engine applies it."""
    return next(r.keep_firing_for for r in DEFAULT_RULES if r.name == name)


def checks(day: dt.date, offset: dt.timedelta) -> list[dt.datetime]:
    """Every evaluation instant of a local day."""
    start = dt.datetime.combine(day, dt.time(0), tzinfo=TZ).astimezone(dt.UTC) + offset
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=TZ).astimezone(dt.UTC)
    return [start + CHECK * n for n in range(int((end - start) / CHECK) + 1) if start + CHECK * n < end]


def firing(rhythm: Rhythm, rules: Rules, arrivals: list[dt.datetime], now: dt.datetime,
           midnight: dt.datetime) -> tuple[bool, bool]:
    """(stopped fires, low-today fires) at `now`, seeing only the arrivals before it."""
    n = bisect.bisect_left(arrivals, now)
    last = arrivals[n - 1] if n else None
    today = n - bisect.bisect_left(arrivals, midnight)
    verdict = stopped(rhythm, rules.stopped, last_sale=last, now=now, tz=TZ)  # opening: holding on is not counted
    return (verdict is not None and verdict.opens,
            low_today(rhythm, rules.low, orders=today, now=now, tz=TZ) is not None)


def false_alarms(arrivals: list[dt.datetime], counts: Counter[tuple[dt.date, int]], month: list[dt.date],
                 rules: Rules) -> tuple[int, int]:
    """Alerts started by each rule over a month without incidents."""
    started = [0, 0]
    last_true: list[dt.datetime | None] = [None, None]  # an alert stays open until false for `keep` (the engine)
    for day in month:
        rhythm = rhythm_for(counts, day)
        midnight = dt.datetime.combine(day, dt.time(0), tzinfo=TZ).astimezone(dt.UTC)
        for now in checks(day, dt.timedelta()):
            now_firing = firing(rhythm, rules, arrivals, now, midnight)
            for i in (0, 1):
                seen = last_true[i]
                still_open = seen is not None and now - seen <= rules.keep[i] + CHECK
                started[i] += now_firing[i] and not still_open
                if now_firing[i]:
                    last_true[i] = now
    return started[0], started[1]


def detection(arrivals: list[dt.datetime], counts: Counter[tuple[dt.date, int]], day: dt.date, rules: Rules,
              rng: random.Random) -> tuple[float, float, float]:
    """A full stop at the start of the day's peak hour: (delay in expected gaps, in minutes, gaps in 4 h)."""
    rhythm = rhythm_for(counts, day)
    hours = rhythm.rates[day.weekday()]
    peak = max(range(24), key=lambda h: hours[h].orders)
    stop = dt.datetime.combine(day, dt.time(peak), tzinfo=TZ).astimezone(dt.UTC)
    before = arrivals[:bisect.bisect_left(arrivals, stop)]
    per_hour = hours[peak].orders
    models = {day: rhythm}
    now = stop + rng.random() * CHECK
    while now < stop + dt.timedelta(days=2):
        local_day = now.astimezone(TZ).date()
        if local_day not in models:
            models[local_day] = rhythm_for(counts, local_day)
        midnight = dt.datetime.combine(local_day, dt.time(0), tzinfo=TZ).astimezone(dt.UTC)
        if any(firing(models[local_day], rules, before, now, midnight)):
            break
        now += CHECK
    minutes = (now - stop).total_seconds() / 60
    return minutes * per_hour / 60, minutes, FIXED_NO_SALES_HOURS * per_hour


def run_size(per_day: float, months: int, rules: Rules, seed: int) -> dict[str, float]:
    """Every figure of one row of the table."""
    rng = random.Random(seed)
    days = [FIRST_DAY + dt.timedelta(days=n) for n in range(HISTORY_WEEKS * 7 + MONTH_DAYS * months)]
    arrivals = simulate(per_day, days, rng)
    counts = hourly(arrivals)
    fa_stop = fa_low = 0
    delays: list[tuple[float, float, float]] = []
    for m in range(months):
        month = days[HISTORY_WEEKS * 7 + MONTH_DAYS * m:][:MONTH_DAYS]
        s, low = false_alarms(arrivals, counts, month, rules)
        fa_stop, fa_low = fa_stop + s, fa_low + low
        delays += [detection(arrivals, counts, day, rules, rng) for day in month]
    gaps = sorted(d[0] for d in delays)
    return {"stop_fa": fa_stop / months, "low_fa": fa_low / months, "gaps_median": statistics.median(gaps),
            "gaps_worst": gaps[-1], "min_median": statistics.median(d[1] for d in delays),
            "fixed_gaps": statistics.median(d[2] for d in delays)}


def table(rows: dict[float, dict[str, float]]) -> str:
    """The Markdown table the README shows."""
    lines = ["| orders/day | false alarms / 30 d: stopped | low today | full stop at peak detected after,"
             " expected gaps (median · worst) | minutes (median) | fixed 4 h rule, in gaps |",
             "|---:|---:|---:|---:|---:|---:|"]
    for size, r in rows.items():
        lines.append(f"| {size:,.0f} | {r['stop_fa']:.1f} | {r['low_fa']:.1f} | {r['gaps_median']:.1f} ·"
                     f" {r['gaps_worst']:.1f} | {r['min_median']:.0f} | {r['fixed_gaps']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    """Parse the arguments, run every size, print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="5,50,500,5000")
    parser.add_argument("--months", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--alpha", type=float, help="stopped: alpha (default: StoppedParams')")
    parser.add_argument("--budget", type=float, help="stopped: false alarms per 30 days it tightens alpha to")
    args = parser.parse_args()
    stop = StoppedParams()
    if args.alpha is not None:
        stop = replace(stop, alpha=args.alpha)
    if args.budget is not None:
        stop = replace(stop, false_alarms_per_30_days=args.budget)
    rules = Rules(stop, LowTodayParams(), (rule_keep("sales_stopped"), rule_keep("sales_low_today")))
    print(f"stopped: {rules.stopped}\nlow today: {rules.low}\nmodel: {RhythmParams()}")
    rows = {}
    for size in (float(s) for s in args.sizes.split(",")):
        rows[size] = run_size(size, args.months, rules, args.seed)
        print(f"  {size:,.0f}/day done", file=sys.stderr)
    print(table(rows))


if __name__ == "__main__":
    main()
