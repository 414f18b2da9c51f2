"""Synthetic store history for `salespulse seed`: deterministic rows with a realistic rhythm, loaded by COPY.

`orders` counts successful orders (completed, or later refunded); failed payment attempts come on top, about
4% of all attempts. Everything is generated lazily, chronologically, in chunks, so memory stays bounded at
any size; the same SeedSpec always yields the same rows.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final
from zoneinfo import ZoneInfo

from bot.demo.rhythm import hour_rate
from bot.money import minor_unit_exponent
from queries import seed as q

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

FAILED_SHARE_OF_ATTEMPTS: Final = 0.04
FULL_REFUND_SHARE: Final = 0.03      # of successful orders: payment_status 'refunded'
PARTIAL_REFUND_SHARE: Final = 0.01   # of successful orders: stays 'completed', amount_refunded > 0
AFFILIATE_SHARE: Final = 0.20
ABANDONED_PER_ORDER: Final = 0.35    # extra checkout sessions that never complete
CUSTOMERS_PER_ORDER: Final = 0.6     # size of the customer pool; skewed draws make repeat buyers
WEBHOOK_LOG_EVERY: Final = 50        # one webhook_logs row per this many successful orders
WEBHOOK_ERROR_SHARE: Final = 0.05
MIN_PENDING: Final = 3               # so "pending checkouts" always shows something
# The shortest expiry Stripe allows (expires_at ≥ 30 min): an abandoned session is 'pending' for 30 minutes,
# then 'expired'. https://docs.stripe.com/api/checkout/sessions/create#create_checkout_session-expires_at
CHECKOUT_EXPIRY: Final = dt.timedelta(minutes=30)
BUCKET: Final = dt.timedelta(minutes=10)
GROWTH_PER_30_DAYS: Final = 1.08


# decline_code → last_payment_error's message (https://docs.stripe.com/declines/codes). Failures keep the message,
# as the live intake does (bot/stripe/build.py), so /errors groups seeded and simulated ones together.
DECLINES: Final = {
    "insufficient_funds": "Your card has insufficient funds.",
    "generic_decline": "Your card was declined.",
    "expired_card": "Your card has expired.",
    "incorrect_cvc": "Your card's security code is incorrect.",
}
FAILURES: Final = {reason: weight for reason, weight in zip(DECLINES.values(), (25, 53, 12, 10), strict=True)}
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
_PEOPLE: Final = tuple((f"{f.lower()}.{last.lower().replace('ü', 'ue')}", f"{f} {last}")
                       for last in LAST for f in FIRST)


@dataclass(frozen=True, slots=True)
class SeedSpec:
    """What to generate: `orders` successful orders over the `days` days ending at `now` (aware)."""

    orders: int
    days: int
    now: dt.datetime
    tz: ZoneInfo
    seed: int
    token: str  # makes every id of this run unique, so seeding twice never collides
    chunk_size: int = 50_000
    since: dt.datetime | None = None  # from here to `now` instead of the `days` before it (the demo's gap)

    @property
    def start(self) -> dt.datetime:
        """Where the history begins."""
        return self.since or self.now - dt.timedelta(days=self.days)


@dataclass(frozen=True, slots=True)
class Batch:
    """One chunk of rows, each tuple laid out as the matching column tuple in queries.seed."""

    orders: list[q.OrderRow]
    failures: list[q.PaymentFailureRow]
    sessions: list[q.CheckoutSessionRow]
    webhook_logs: list[q.WebhookLogRow]
    completed: int  # successful orders among `orders`; the rest failed


@dataclass(frozen=True, slots=True)
class SeedCounts:
    """Running totals of a seeding run."""

    orders: int = 0  # successful (completed or refunded)
    failed: int = 0  # failed attempts: one row in orders and one in payment_failures each
    sessions: int = 0
    webhook_logs: int = 0

    @property
    def rows(self) -> int:
        """Every row written, across all tables."""
        return self.orders + 2 * self.failed + self.sessions + self.webhook_logs

    def plus(self, batch: Batch) -> SeedCounts:
        """These totals with one more batch added."""
        return SeedCounts(self.orders + batch.completed, self.failed + len(batch.failures),
                          self.sessions + len(batch.sessions), self.webhook_logs + len(batch.webhook_logs))


def bucket_counts(spec: SeedSpec, rng: random.Random) -> list[int]:
    """Successful orders per 10-minute bucket from the start on: rhythm × growth × noise, summing to N."""
    start = spec.start
    buckets = max(1, -(-(spec.now - start) // BUCKET))  # a gap's last bucket may be partial (see generate)
    weights = []
    for i in range(buckets):
        local = (start + BUCKET * (i + 0.5)).astimezone(spec.tz)
        trend = GROWTH_PER_30_DAYS ** ((i + 0.5) * (BUCKET / dt.timedelta(days=30)))
        weights.append(hour_rate(local) * trend * max(0.3, rng.gauss(1.0, 0.15)))
    # Cumulative rounding: every bucket gets its share and the total is exactly N.
    scale = spec.orders / sum(weights)
    counts, acc, done = [], 0.0, 0
    for w in weights:
        acc += w
        upto = min(spec.orders, round(acc * scale))
        counts.append(upto - done)
        done = upto
    counts[-1] += spec.orders - done
    return counts


def generate(spec: SeedSpec) -> Iterator[Batch]:
    """Yield the history in chronological chunks of at most `spec.chunk_size` successful orders."""
    rng = random.Random(spec.seed)
    rows = _Rows(spec, rng)
    product_cum = list(itertools.accumulate(PRODUCT_WEIGHTS))
    currencies, currency_cum = list(CURRENCY_WEIGHTS), list(itertools.accumulate(CURRENCY_WEIGHTS.values()))
    fail_per_order = FAILED_SHARE_OF_ATTEMPTS / (1 - FAILED_SHARE_OF_ATTEMPTS)
    width = BUCKET.total_seconds()
    for index, count in enumerate(bucket_counts(spec, rng)):
        if not count:
            continue
        begin = rows.start + index * width
        span = min(width, rows.now - begin)  # never past now
        failures = sum(rng.random() < fail_per_order for _ in range(count))
        attempts = count + failures
        failed = set(rng.sample(range(attempts), failures))
        products = rng.choices(range(len(PRODUCTS)), cum_weights=product_cum, k=attempts)
        moneys = rng.choices(currencies, cum_weights=currency_cum, k=attempts)
        for n, offset in enumerate(sorted([rng.random() for _ in range(attempts)])):
            if n in failed:
                rows.failure(begin + offset * span, products[n], moneys[n])
                continue
            if rows.completed == spec.chunk_size:  # before, not after: the last chunk is never empty
                yield rows.flush()
            rows.order(begin + offset * span, products[n], moneys[n])
    if spec.since is None:  # a gap filled later finds the checkouts the history left open
        rows.top_up_pending()
    yield rows.flush()


def _at(epoch: float) -> q.Micros:
    # No datetime: asyncpg's datetime encoder alone took two thirds of the seeder's encoding time (queries.seed).
    return round(epoch * 1_000_000)


class _Rows:
    """The rows of the chunk being built and the id counters of the run; times are epoch seconds inside."""

    def __init__(self, spec: SeedSpec, rng: random.Random) -> None:
        self.rng = rng
        self.now = spec.now.timestamp()
        self.start = spec.start.timestamp()
        self.pool = max(1, round(spec.orders * CUSTOMERS_PER_ORDER))
        self.pi, self.cs, self.evt = (f"{kind}_seed_{spec.token}_" for kind in ("pi", "cs", "evt"))
        self.order_ids, self.session_ids, self.event_ids = (itertools.count(1) for _ in range(3))
        self.successes = self.pending = self.completed = 0
        self.orders: list[q.OrderRow] = []
        self.failures: list[q.PaymentFailureRow] = []
        self.sessions: list[q.CheckoutSessionRow] = []
        self.webhook_logs: list[q.WebhookLogRow] = []

    def flush(self) -> Batch:
        """Hand over the rows built so far and start an empty chunk."""
        batch = Batch(self.orders, self.failures, self.sessions, self.webhook_logs, completed=self.completed)
        self.orders, self.failures, self.sessions, self.webhook_logs = [], [], [], []
        self.completed = 0
        return batch

    def customer(self) -> tuple[str, str]:
        """Email and name from the pool; low indices are drawn more often (the loyal customers)."""
        idx = int(self.pool * self.rng.random() ** 1.5)
        handle, name = _PEOPLE[idx % len(_PEOPLE)]
        return f"{handle}{idx}@{DOMAINS[idx % len(DOMAINS)]}", name

    def affiliate(self) -> str | None:
        """An affiliate id for about one order in five, a few affiliates bringing most."""
        rng = self.rng
        return AFFILIATES[int(len(AFFILIATES) * rng.random() ** 2)] if rng.random() < AFFILIATE_SHARE \
            else None

    def refund_time(self, paid: float) -> q.Micros:
        """When a refund of an order paid at `paid` happens: mostly within a few days, never after now."""
        delay = 600 + self.rng.expovariate(1 / 129_600)
        room = self.now - paid
        return _at(paid + (delay if delay < room else room * self.rng.random()))

    def order(self, paid: float, product: int, currency: str) -> None:
        """A successful order, its completed checkout, maybe a refund, maybe an abandoned cart nearby."""
        rng = self.rng
        oid = self.pi + str(next(self.order_ids)).zfill(10)
        sid = self.cs + str(next(self.session_ids)).zfill(10)
        email, name = self.customer()
        amount = PRICES[currency][product]
        status, refunded, refunded_at = "completed", 0, None
        roll = rng.random()
        if roll < FULL_REFUND_SHARE:
            status, refunded, refunded_at = "refunded", amount, self.refund_time(paid)
        elif roll < FULL_REFUND_SHARE + PARTIAL_REFUND_SHARE:
            step = 10 ** minor_unit_exponent(currency)  # refund whole dollars, euros, yen …
            refunded = max(step, round(amount * rng.uniform(0.2, 0.6) / step) * step)
            refunded_at = self.refund_time(paid)
        at = _at(paid)
        self.orders.append((oid, status, amount, refunded, currency, email, name, PRODUCTS[product],
                            self.affiliate(), sid, oid, None, False, at, refunded_at, at))
        opened = _at(max(self.start, paid - 60 - 840 * rng.random()))  # checkout took 1-15 minutes
        self.sessions.append((sid, "completed", amount, currency, email, opened, at, at))
        if rng.random() < ABANDONED_PER_ORDER:
            self.abandoned(max(self.start, paid - 3600 * rng.random()), amount, currency)
        self.completed += 1
        self.successes += 1
        if self.successes % WEBHOOK_LOG_EVERY == 0:
            self.webhook_log(paid, oid, sid, refunded=status == "refunded")

    def failure(self, tried: float, product: int, currency: str) -> None:
        """A failed payment attempt: an order row in 'failed' and its payment_failures row."""
        oid = self.pi + str(next(self.order_ids)).zfill(10)
        email, name = self.customer()
        amount = PRICES[currency][product]
        reason = self.rng.choices(list(FAILURES), weights=list(FAILURES.values()))[0]
        at = _at(tried)
        self.orders.append((oid, "failed", amount, 0, currency, email, name, PRODUCTS[product],
                            self.affiliate(), None, oid, reason, False, at, None, at))
        event_id = f"{self.evt}pf{next(self.event_ids):010d}"
        self.failures.append((event_id, oid, amount, currency, email, reason, at))

    def abandoned(self, opened: float, amount: int, currency: str) -> None:
        """A checkout nobody finished: 'pending' for its first 30 minutes, 'expired' after."""
        email = self.customer()[0] if self.rng.random() < 0.6 else None  # many leave before typing one
        sid = self.cs + str(next(self.session_ids)).zfill(10)
        expiry = CHECKOUT_EXPIRY.total_seconds()
        if opened + expiry > self.now:
            self.pending += 1
            self.sessions.append((sid, "pending", amount, currency, email, _at(opened), None, _at(opened)))
        else:
            self.sessions.append((sid, "expired", amount, currency, email, _at(opened), None,
                                  _at(opened + expiry)))

    def top_up_pending(self) -> None:
        """Open checkouts in the last 30 minutes until there are at least MIN_PENDING."""
        while self.pending < MIN_PENDING:
            ago = self.rng.uniform(30, CHECKOUT_EXPIRY.total_seconds() - 60)
            self.abandoned(self.now - ago, PRICES["USD"][0], "USD")

    def webhook_log(self, at: float, order_id: str, session_id: str, *, refunded: bool) -> None:
        """A received Stripe event about this order: processed, now and then an error."""
        rng = self.rng
        event_id = f"{self.evt}wh{next(self.event_ids):010d}"
        event_type = "charge.refunded" if refunded else rng.choices(EVENT_TYPES, weights=EVENT_WEIGHTS)[0]
        error = rng.choice(WEBHOOK_ERRORS) if rng.random() < WEBHOOK_ERROR_SHARE else None
        subject = session_id if event_type.startswith("checkout.") else order_id
        payload = json.dumps({"id": event_id, "object": "event", "type": event_type, "livemode": False,
                              "created": int(at), "data": {"object": {"id": subject}}})
        received = _at(min(self.now, at + rng.uniform(0.2, 3.0)))
        self.webhook_logs.append(("stripe", event_id, event_type, "error" if error else "processed", error,
                                  False, payload, _at(at), received, received))
