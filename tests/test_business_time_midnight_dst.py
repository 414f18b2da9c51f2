"""Business time for the no-sales rules on days whose DST change touches midnight, with business hours that reach
midnight (a store open round the clock sets 00:00-23:59: the two ends must differ)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from bot.alerts.business_time import business_time_between
from bot.config_values import HourWindow

ALL_DAY = HourWindow(dt.time(0, 0), dt.time(23, 59))


def test_a_spring_forward_at_local_23_00_is_not_counted_twice() -> None:
    """Nuuk (Greenland) springs forward on Saturday 28 March 2026 at 23:00 -02 (01:00 UTC): Saturday ends at 23:00,
    Sunday begins at once. From the last order Saturday 21:00 to Sunday 01:01, 3 h 01 min of real time passed, all of
    it inside 00:00-23:59; business_time_between reads Saturday's closing 23:59 (which does not exist) as Sunday
    00:59 and counts 00:00-00:59 Sunday twice: 4 h 00 min, so the critical "No sales" (4 business hours) pages an
    hour early, saying 4.0 business hours."""
    nuuk = ZoneInfo("America/Nuuk")
    last = dt.datetime(2026, 3, 28, 21, 0, tzinfo=nuuk)
    now = dt.datetime(2026, 3, 29, 1, 1, tzinfo=nuuk)
    real = now.astimezone(dt.UTC) - last.astimezone(dt.UTC)
    assert real == dt.timedelta(hours=3, minutes=1)
    assert business_time_between(last, now, tz=nuuk, hours=ALL_DAY) <= real


def test_a_fall_back_at_midnight_counts_the_repeated_hour() -> None:
    """Cairo falls back at midnight on Thursday 29 October 2026 (24:00 EEST → 23:00 EET): 23:00-24:00 happens twice.
    A store open 00:00-23:59 is open in both; from Thursday 20:00 to Friday 00:30 (5 h 30 min of real time, of which
    only 23:59-00:00 is outside the window), business time should be about 5 h 28 min; the second 23:00-23:59 is
    left out (4 h 29 min), so the alert pages an hour late."""
    cairo = ZoneInfo("Africa/Cairo")
    last = dt.datetime(2026, 10, 29, 20, 0, tzinfo=cairo)
    now = dt.datetime(2026, 10, 30, 0, 30, tzinfo=cairo)
    real = now.astimezone(dt.UTC) - last.astimezone(dt.UTC)
    assert real == dt.timedelta(hours=5, minutes=30)
    got = business_time_between(last, now, tz=cairo, hours=ALL_DAY)
    assert got >= real - dt.timedelta(minutes=2)


# Property: over every 2026 clock change of zones whose changes touch midnight or move by half an hour.

ZONES = ("America/Santiago", "Africa/Cairo", "Asia/Beirut", "America/Havana", "America/Nuuk", "Australia/Lord_Howe")
# Windows whose ends fall in those gaps and repeated hours (00:00, 23:00-00:00, 01:30-02:30), one past midnight.
WINDOWS = (ALL_DAY, HourWindow(dt.time(9), dt.time(21)), HourWindow(dt.time(23, 30), dt.time(0, 30)),
           HourWindow(dt.time(0, 30), dt.time(2, 15)), HourWindow(dt.time(18), dt.time(2)))


def changes_2026(tz: ZoneInfo) -> list[dt.datetime]:
    """The instants (UTC) the zone's offset changed in 2026, found on a 15-minute grid (every change is on it)."""
    found, t = [], dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    offset = t.astimezone(tz).utcoffset()
    while t < dt.datetime(2027, 1, 1, tzinfo=dt.UTC):
        t += dt.timedelta(minutes=15)
        if (now := t.astimezone(tz).utcoffset()) != offset:
            found.append(t)
            offset = now
    return found


def spans(tz: ZoneInfo) -> list[tuple[dt.datetime, dt.datetime]]:
    """Spans over each change: from 30 h before to 1 min, 2 h 17 min and 30 h after, and from 7 min before."""
    return [(change - before, change + after) for change in changes_2026(tz)
            for before in (dt.timedelta(hours=30), dt.timedelta(minutes=7))
            for after in (dt.timedelta(minutes=1), dt.timedelta(hours=2, minutes=17), dt.timedelta(hours=30))]


@pytest.mark.parametrize("zone", ZONES)
def test_a_window_and_its_complement_add_up_to_the_real_time(zone: str) -> None:
    """00:00-23:59 and 23:59-00:00 together are open all the time, every day: their business times add up to the
    real time elapsed, whatever the clocks did (and so does any window with its complement)."""
    tz = ZoneInfo(zone)
    assert len(changes_2026(tz)) >= 1
    for start, end in spans(tz):
        for window in WINDOWS:
            rest = HourWindow(window.end, window.start)
            both = business_time_between(start, end, tz=tz, hours=window) + \
                business_time_between(start, end, tz=tz, hours=rest)
            assert both == end - start, (zone, start, end, window)


@pytest.mark.parametrize("zone", ZONES)
def test_business_time_is_the_real_time_open_on_says_is_open(zone: str) -> None:
    """Minute by minute, business time is the real time during which HourWindow.open_on (what the alerts call "in
    business hours") holds, every day or on weekdays only."""
    tz = ZoneInfo(zone)
    for change in changes_2026(tz):
        start, end = change - dt.timedelta(hours=30), change + dt.timedelta(hours=30)
        minutes = [start + dt.timedelta(minutes=n) for n in range(int((end - start) / dt.timedelta(minutes=1)))]
        for window in WINDOWS:
            for days in (frozenset(range(7)), frozenset(range(5))):
                open_minutes = sum(window.open_on(m.astimezone(tz), days) for m in minutes)
                got = business_time_between(start, end, tz=tz, hours=window, days=days)
                assert got == dt.timedelta(minutes=open_minutes), (zone, change, window, sorted(days))
