"""SQL behind the MRR figures: MRR now and a week ago, its movements over a window, active subscribers.

All read `subscription_events` (one snapshot of a subscription's counted MRR per Stripe event, migration 0015) in
event time, so they do not depend on the order events arrived in. A movement is the difference between a
snapshot and the one before it for the same subscription: from 0 to more is new MRR (reactivation when it had paid
before), up or down is expansion or contraction, to 0 is churn. Kept per currency: never summed across them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from queries.executor import Executor

# $1 now, $2 window start, $3 a week before now. The movements read only subscriptions that moved in the window.
SUMMARY: Final = """
WITH latest_now AS (SELECT DISTINCT ON (subscription_id) currency, mrr
                        FROM subscription_events WHERE at <= $1
                       ORDER BY subscription_id, at DESC, rank DESC, event_id DESC),
     latest_before AS (SELECT DISTINCT ON (subscription_id) currency, mrr
                        FROM subscription_events WHERE at <= $3
                       ORDER BY subscription_id, at DESC, rank DESC, event_id DESC),
     moved AS (SELECT DISTINCT subscription_id FROM subscription_events WHERE at >= $2 AND at <= $1),
     steps AS (
        SELECT e.currency, e.at, e.mrr,
               lag(e.mrr, 1, 0::bigint) OVER w AS prev,
               coalesce(max(e.mrr) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS ever
          FROM subscription_events AS e
         WHERE e.subscription_id IN (SELECT subscription_id FROM moved)
        WINDOW w AS (PARTITION BY e.subscription_id ORDER BY e.at, e.rank, e.event_id)),
     movement AS (
        SELECT currency,
               sum(mrr)        FILTER (WHERE prev = 0 AND mrr > 0 AND ever = 0)  AS new,
               sum(mrr)        FILTER (WHERE prev = 0 AND mrr > 0 AND ever > 0)  AS reactivation,
               sum(mrr - prev) FILTER (WHERE prev > 0 AND mrr > prev)            AS expansion,
               sum(prev - mrr) FILTER (WHERE prev > 0 AND mrr < prev AND mrr > 0) AS contraction,
               sum(prev)       FILTER (WHERE prev > 0 AND mrr = 0)               AS churned,
               count(*)        FILTER (WHERE prev > 0 AND mrr = 0)               AS churned_count
          FROM steps
         WHERE at >= $2 AND at <= $1
         GROUP BY currency),
     now_t AS (SELECT currency, sum(mrr) AS mrr, count(*) FILTER (WHERE mrr > 0) AS active
                 FROM latest_now GROUP BY currency),
     before_t AS (SELECT currency, sum(mrr) AS mrr FROM latest_before GROUP BY currency),
     currencies AS (SELECT currency FROM now_t UNION SELECT currency FROM before_t UNION SELECT currency FROM movement)
SELECT c.currency,
       coalesce(n.mrr, 0)::bigint           AS mrr,
       coalesce(b.mrr, 0)::bigint           AS mrr_week_ago,
       coalesce(m.new, 0)::bigint           AS new,
       coalesce(m.reactivation, 0)::bigint  AS reactivation,
       coalesce(m.expansion, 0)::bigint     AS expansion,
       coalesce(m.contraction, 0)::bigint   AS contraction,
       coalesce(m.churned, 0)::bigint       AS churned,
       coalesce(m.churned_count, 0)::bigint AS churned_count,
       coalesce(n.active, 0)::bigint        AS active
  FROM currencies AS c
  LEFT JOIN now_t    AS n USING (currency)
  LEFT JOIN before_t AS b USING (currency)
  LEFT JOIN movement AS m USING (currency)
 ORDER BY mrr DESC, c.currency
"""

TRIALING: Final = "SELECT count(*) FROM subscriptions WHERE status = 'trialing'"


@dataclass(frozen=True, slots=True)
class MrrFigures:
    """One currency's MRR (minor units a month): now, a week ago, and its movements over the window."""

    currency: str
    mrr: int
    mrr_week_ago: int
    new: int
    reactivation: int
    expansion: int
    contraction: int
    churned: int
    churned_count: int
    active: int  # subscriptions counted in MRR now

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

    @property
    def active(self) -> int:
        """Subscribers counted in MRR, across currencies."""
        return sum(c.active for c in self.currencies)


async def summary(db: Executor, *, now: dt.datetime, since: dt.datetime) -> MrrSummary:
    """MRR now and a week before `now` per currency, and its movements between `since` and `now`."""
    rows = await db.fetch(SUMMARY, now, since, now - dt.timedelta(days=7))
    trialing = await db.fetchval(TRIALING)
    return MrrSummary(since=since, now=now, currencies=tuple(MrrFigures(**dict(r)) for r in rows),
                      trialing=int(trialing))
