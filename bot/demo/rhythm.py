"""The demo store's rhythm: how busy each local hour of a weekday or weekend day is, and each day of the week (the
seeded history and bench/rhythm.py's simulated stores follow it)."""

from __future__ import annotations

import datetime as dt
from typing import Final

# Relative order rate by local hour (0-23): quiet at night, a late-morning and a bigger evening peak.
WEEKDAY_HOURS: Final = (0.22, 0.14, 0.10, 0.08, 0.08, 0.12, 0.25, 0.45, 0.70, 0.95, 1.15, 1.25,
                        1.15, 1.00, 0.95, 0.92, 0.95, 1.00, 1.10, 1.25, 1.35, 1.20, 0.85, 0.45)
# Weekends start later and stay flatter.
WEEKEND_HOURS: Final = (0.30, 0.20, 0.14, 0.10, 0.08, 0.08, 0.12, 0.22, 0.40, 0.65, 0.90, 1.05,
                        1.10, 1.05, 1.00, 0.95, 0.95, 1.00, 1.05, 1.15, 1.20, 1.10, 0.85, 0.50)
DAY_LEVEL: Final = (1.00, 1.06, 1.05, 1.02, 0.95, 0.78, 0.82)  # Monday … Sunday


def hour_rate(local: dt.datetime) -> float:
    """The daily curve at a local time (linear between hour midpoints) times the weekday's level."""
    curve = WEEKEND_HOURS if local.weekday() >= 5 else WEEKDAY_HOURS
    h = (local.hour + local.minute / 60 - 0.5) % 24
    i = int(h)
    frac = h - i
    return (curve[i] * (1 - frac) + curve[(i + 1) % 24] * frac) * DAY_LEVEL[local.weekday()]
