"""The synthetic store's make-up for `salespulse seed` and the demo: products and prices, its daily and weekly
rhythm, failure reasons, event types, affiliates and the names its customers are drawn from."""

from __future__ import annotations

import datetime as dt
from typing import Final

PRODUCTS: Final = ("Starter Course", "Pro Course", "Coaching Call", "Ebook", "Bundle")
PRODUCT_WEIGHTS: Final = (30, 17, 6, 34, 13)
# Minor units of each currency, as Stripe counts them: cents, except JPY, which has none (¥2,980 is 2980).
PRICES: Final[dict[str, tuple[int, ...]]] = {
    "USD": (4900, 19900, 15000, 1900, 29900),
    "EUR": (4500, 18900, 13900, 1700, 27900),
    "GBP": (3900, 16900, 12500, 1500, 24900),
    "JPY": (7480, 29800, 22000, 2980, 44800),
}
CURRENCY_WEIGHTS: Final = {"USD": 78, "EUR": 12, "GBP": 7, "JPY": 3}

# Relative order rate by local hour (0-23): quiet at night, a late-morning and a bigger evening peak.
WEEKDAY_HOURS: Final = (0.22, 0.14, 0.10, 0.08, 0.08, 0.12, 0.25, 0.45, 0.70, 0.95, 1.15, 1.25,
                        1.15, 1.00, 0.95, 0.92, 0.95, 1.00, 1.10, 1.25, 1.35, 1.20, 0.85, 0.45)
# Weekends start later and stay flatter.
WEEKEND_HOURS: Final = (0.30, 0.20, 0.14, 0.10, 0.08, 0.08, 0.12, 0.22, 0.40, 0.65, 0.90, 1.05,
                        1.10, 1.05, 1.00, 0.95, 0.95, 1.00, 1.05, 1.15, 1.20, 1.10, 0.85, 0.50)
DAY_LEVEL: Final = (1.00, 1.06, 1.05, 1.02, 0.95, 0.78, 0.82)  # Monday … Sunday

FAILURE_REASONS: Final = ("card_declined", "insufficient_funds", "expired_card", "incorrect_cvc",
                          "processing_error", "authentication_required")
FAILURE_WEIGHTS: Final = (45, 25, 10, 7, 5, 8)
# The event a successful order's log row stands for (a refunded order's is its charge.refunded).
EVENT_TYPES: Final = ("checkout.session.completed", "payment_intent.succeeded", "invoice.paid")
EVENT_WEIGHTS: Final = (55, 35, 10)
WEBHOOK_ERRORS: Final = ("no order found for charge", "canceling statement due to statement timeout",
                         "invalid payload: data.object.amount_total missing",
                         "connection reset by peer while writing to the database")
AFFILIATES: Final = tuple(f"aff_{name}" for name in (
    "maria", "techtalks", "growthlab", "devdaily", "kenji", "sophie", "codecamp", "the_indie_hacker",
    "lena", "omar", "startupstack", "designweekly"))
FIRST: Final = ("Emma", "Liam", "Olivia", "Noah", "Ava", "Lucas", "Mia", "Hiro", "Sofia", "Mateo", "Aiko",
                "Chloe", "Ethan", "Zoe", "Leon", "Amara", "Yuki", "Finn", "Isla", "Omar", "Priya", "Jonas")
LAST: Final = ("Smith", "Garcia", "Müller", "Tanaka", "Rossi", "Dubois", "Nowak", "Silva", "Kim", "Jones",
               "Brown", "Okafor", "Larsen", "Sato", "Martin", "Novak", "Cohen", "Singh", "Walsh", "Becker")
DOMAINS: Final = ("gmail.com", "outlook.com", "yahoo.com", "icloud.com", "proton.me", "example.com")
# (email handle, display name) for every first × last name pair.
PEOPLE: Final = tuple((f"{f.lower()}.{last.lower().replace('ü', 'ue')}", f"{f} {last}")
                       for last in LAST for f in FIRST)


def hour_rate(local: dt.datetime) -> float:
    """The daily curve at a local time (linear between hour midpoints) times the weekday's level."""
    curve = WEEKEND_HOURS if local.weekday() >= 5 else WEEKDAY_HOURS
    h = (local.hour + local.minute / 60 - 0.5) % 24
    i = int(h)
    frac = h - i
    return (curve[i] * (1 - frac) + curve[(i + 1) % 24] * frac) * DAY_LEVEL[local.weekday()]
