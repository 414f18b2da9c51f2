"""SQL behind the MRR figures: MRR now and a week ago, its movements over a window, active subscribers.

A movement is the difference between a `subscription_events` snapshot (one per Stripe event, migration 0015) and the
one before it for the same subscription, in event time (not arrival order) — or, for the first one known, what its
own event says came before (a subscription first seen at a renewal after install is not new MRR). From 0 to more is
new MRR (reactivation when it had paid before), up or down is expansion or contraction, to 0 is churn; but a
subscription whose customer pays on another one just before it (`others_paying`, 0053) moves that customer's MRR up
or down: starting to pay is expansion, stopping contraction, and no subscriber comes or goes (subscribers are
customers, as Stripe's billing analytics count them). MRR now is the sum of the `subscriptions` states (each its
newest snapshot) less the movements after `now`, and a week ago less the week's movements too. Each snapshot carries
its predecessor's MRR (`prev_mrr_units`, `paid_before`) and the movements are summed per UTC day
(`mrr_movement_days`), both kept by migration 0022's triggers whatever the arrival order, so a window reads its
whole days and only its edge days' snapshots. 222k snapshots of 20k subscriptions: about 1 s as a scan of every
snapshot, 65–75 ms finding each predecessor by index, 6–8 ms this way; counting subscribers as distinct customers
(0053) by sorting every subscription made it 15 ms, read from the paying ones' index (0055) 6 ms (bench/mrr.py).
Kept per currency: never summed across them.

What is stored is in MRR units (12,000,000 to a minor unit a month, migration 0046: bot/subscriptions/mrr.py), and
summed as it is; each figure is rounded once, half up, to minor units at the end (mrr_minor()), so a hundred
subscribers at a third of a cent over a whole one each make 33 cents more, not none.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from queries.cover import DAY, ceil_to, floor_to
from queries.discounts import before_discounts
from queries.executor import Executor

# $1 now, $2 window start, $3 a week before now; then the UTC midnights that bound the whole days each part reads
# from mrr_movement_days (migration 0022): $4 the first at or after $2, $5 the last at or before $1, $6 and $7 the
# first strictly after $3 and $1. Only the snapshots of the edge days are read; each part counts a snapshot once,
# from its day row or from itself.
SUMMARY: Final = """
WITH edges AS (
        SELECT currency, at, m.*
          FROM subscription_events
         CROSS JOIN LATERAL mrr_movement(mrr_units, coalesce(prev_mrr_units, before_mrr_units, 0), paid_before,
                                         others_paying) AS m
         WHERE (at >= $2 AND at < $4) OR (at > $3 AND at < $6) OR (at >= $5 AND at < $7)),
     parts AS (
        SELECT currency, new, reactivation, expansion, contraction, churned, churned_count, delta, active_delta,
               at >= $2 AND at <= $1::timestamptz AND NOT (at >= $4 AND at < $5) AS inside,
               at > $3 AND at <= $1::timestamptz AND NOT (at >= $6 AND at < $5)  AS last_week,
               at > $1 AND at < $7                                               AS after_now
          FROM edges
        UNION ALL
        SELECT currency, new, reactivation, expansion, contraction, churned, churned_count, delta, active_delta,
               day >= $4 AND day < $5, day >= $6 AND day < $5, day >= $7
          FROM mrr_movement_days
         WHERE day >= least($4::timestamptz, $6::timestamptz)),
     movement AS (
        SELECT currency,
               sum(new) FILTER (WHERE inside)                         AS new,
               sum(reactivation) FILTER (WHERE inside)                AS reactivation,
               sum(expansion) FILTER (WHERE inside)                   AS expansion,
               sum(contraction) FILTER (WHERE inside)                 AS contraction,
               sum(churned) FILTER (WHERE inside)                     AS churned,
               sum(churned_count) FILTER (WHERE inside)               AS churned_count,
               coalesce(sum(delta) FILTER (WHERE after_now), 0)       AS after_now,
               coalesce(sum(delta) FILTER (WHERE last_week), 0)       AS last_week,
               coalesce(sum(active_delta) FILTER (WHERE after_now), 0) AS active_after
          FROM parts
         WHERE inside OR last_week OR after_now
         GROUP BY currency),
     -- Paying rows only, read from their index in (currency, customer) order (0055): the distinct customers are
     -- counted from rows already in order, not by sorting every subscription's key; each subscription without a
     -- customer is one. Zero-MRR ones add only their currency, found one index probe each.
     state AS (WITH RECURSIVE unpaid AS (
                   SELECT (SELECT min(currency) FROM subscriptions WHERE mrr_units = 0) AS currency
                   UNION ALL
                   SELECT (SELECT min(currency) FROM subscriptions WHERE mrr_units = 0 AND currency > u.currency)
                     FROM unpaid AS u WHERE u.currency IS NOT NULL)
               SELECT currency, sum(mrr) AS mrr, sum(active) AS active
                 FROM (SELECT currency, sum(mrr_units) AS mrr,
                              count(DISTINCT customer) + count(*) FILTER (WHERE customer IS NULL) AS active
                         FROM subscriptions WHERE mrr_units > 0 GROUP BY currency
                       UNION ALL
                       SELECT currency, 0, 0 FROM unpaid WHERE currency IS NOT NULL) AS u
                GROUP BY currency),
     currencies AS (SELECT currency FROM state UNION SELECT currency FROM movement)
SELECT c.currency,
       mrr_minor(coalesce(s.mrr, 0) - coalesce(m.after_now, 0))                             AS mrr,
       mrr_minor(coalesce(s.mrr, 0) - coalesce(m.after_now, 0) - coalesce(m.last_week, 0))  AS mrr_week_ago,
       mrr_minor(coalesce(m.new, 0))                                                        AS new,
       mrr_minor(coalesce(m.reactivation, 0))                                               AS reactivation,
       mrr_minor(coalesce(m.expansion, 0))                                                  AS expansion,
       mrr_minor(coalesce(m.contraction, 0))                                                AS contraction,
       mrr_minor(coalesce(m.churned, 0))                                                    AS churned,
       coalesce(m.churned_count, 0)::bigint                                                 AS churned_count,
       (coalesce(s.active, 0) - coalesce(m.active_after, 0))::bigint                        AS active
  FROM currencies AS c
  LEFT JOIN state    AS s USING (currency)
  LEFT JOIN movement AS m USING (currency)
 ORDER BY mrr DESC, c.currency
"""

TRIALING: Final = "SELECT count(*) FROM subscriptions WHERE status = 'trialing'"


class TiersUnread(StrEnum):
    """Why tiered prices are left out of MRR, as the process knows it (bot/stripe/discount_job.tiers_unread)."""

    NO_KEY = "no_key"  # no STRIPE_API_KEY: nothing will read them
    REFUSED = "key_refused"  # Stripe refuses the key (401, or 403 to the discounts job): see /health
    READING = "reading"  # the discounts job reads them within seconds (or Stripe failed and it tries again)


@dataclass(frozen=True, slots=True)
class MrrFigures:
    """One currency's MRR (minor units a month): now, a week ago, and its movements over the window, each summed
    in MRR units and rounded once (so the movements may add up to a minor unit or two off the change)."""

    currency: str
    mrr: int
    mrr_week_ago: int
    new: int
    reactivation: int
    expansion: int
    contraction: int
    churned: int
    churned_count: int
    active: int  # subscribers: customers with a subscription counted in MRR now (one per customer, 0053)

    @property
    def net_new(self) -> int:
        """New + reactivation + expansion − contraction − churn over the window."""
        return self.new + self.reactivation + self.expansion - self.contraction - self.churned


@dataclass(frozen=True, slots=True)
class MrrSummary:
    """The store's MRR per currency (empty when it has no subscriptions), over [since, now]."""

    since: dt.datetime
    now: dt.datetime
    currencies: tuple[MrrFigures, ...]
    trialing: int = 0
    # Paying subscriptions whose MRR is before Discounts Stripe sent as ids only (migration 0017): not read (no
    # STRIPE_API_KEY, or not yet), and gone from the subscription when read.
    discounts_unread: int = 0
    discounts_gone: int = 0
    tiers_unread: int = 0  # paying subscriptions on a tiered price left out of MRR, tiers unread (BEFORE_DISCOUNTS)
    tiers_why: TiersUnread | None = None  # why, as the caller knows it (None: not said)

    @property
    def active(self) -> int:
        """Subscribers counted in MRR, across currencies."""
        return sum(c.active for c in self.currencies)


async def summary(db: Executor, *, now: dt.datetime, since: dt.datetime,
                  tiers: TiersUnread | None = None) -> MrrSummary:
    """MRR now and a week before `now` per currency, and its movements between `since` and `now`; `tiers` says
    why tiered prices are left out, if any are."""
    week_ago = now - dt.timedelta(days=7)
    # The week and `after now` are open at their start: their first whole day is the one after theirs.
    rows = await db.fetch(SUMMARY, now, since, week_ago, ceil_to(since, DAY), floor_to(now, DAY),
                          floor_to(week_ago, DAY) + DAY, floor_to(now, DAY) + DAY)
    trialing = await db.fetchval(TRIALING)
    unread = await before_discounts(db)
    return MrrSummary(since=since, now=now, currencies=tuple(MrrFigures(**dict(r)) for r in rows),
                      trialing=int(trialing), discounts_unread=unread.unread, discounts_gone=unread.gone,
                      tiers_unread=unread.tiers, tiers_why=tiers)
