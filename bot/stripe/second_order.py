"""One second's events of a subscription that their own bodies could not order, ordered by reading it again.

The intake orders a subscription's events of one second by their previous_attributes (bot/subscriptions/order.py);
where that does not settle it (a value set and set back, a body emptied), it queues the second
(subscription_second_checks, migration 0053). With STRIPE_API_KEY the discounts job then reads each queued
subscription (GET /v1/subscriptions/{id}, the read it already makes for discounts) and, while that second is still
the subscription's newest (a later event's second says nothing of it), puts last the event whose object is the
subscription as Stripe has it now; the state row becomes that event's. Pings already sent are not edited. A second
the read cannot settle, or a subscription Stripe no longer has, stays ordered by event id; a 429 or a rejected key
puts the rest back for the next run.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import asyncpg

from bot.stripe.events_api import KeyRejected, StripeApi, StripeApiError, Unavailable
from bot.stripe.parse import parse_event
from bot.subscriptions.apply import second_events, state_row
from bot.subscriptions.order import last_by, ordered
from queries import intake as intake_q
from queries import subscription_seconds as seconds_q
from queries import subscriptions as q

log = logging.getLogger(__name__)

BATCH = 20


async def settle_due(pool: asyncpg.Pool, api: StripeApi) -> int:
    """Read the queued seconds' subscriptions and order what they settle; how many were settled."""
    claims = await seconds_q.claim_checks(pool, limit=BATCH)
    done = 0
    for index, (subscription_id, at) in enumerate(claims):
        try:
            current = await api.get(f"/v1/subscriptions/{quote(subscription_id, safe='')}")
        except (KeyRejected, Unavailable) as exc:
            if isinstance(exc, KeyRejected) or exc.status == 429:
                await seconds_q.queue_checks(pool, claims[index:])
                raise
            await seconds_q.queue_checks(pool, [(subscription_id, at)])  # 5xx, timeout: the next run
            continue
        except StripeApiError as exc:  # gone (404), or refused: the order stays by event id
            log.info("Subscription %s: not read to order its events of %s: %s", subscription_id, at.isoformat(), exc)
            continue
        async with pool.acquire() as conn, conn.transaction():
            await intake_q.lock_refs(conn, [subscription_id])  # as bot/subscriptions/apply.py: no state race
            done += await settle(conn, subscription_id, at, current)
    return done


async def settle(conn: asyncpg.Connection, subscription_id: str, at: dt.datetime, current: Mapping[str, Any]) -> bool:
    """Order the subscription's events of second `at` by `current` (it as read now), and its state row with them;
    whether it settled them (not when a later event is stored, or not exactly one event is `current`)."""
    rows = await seconds_q.second(conn, subscription_id, at)
    last = last_by(current, second_events(rows)) if len(rows) > 1 else None
    if last is None:
        log.info("Subscription %s: its events of %s stay ordered by id", subscription_id, at.isoformat())
        return False
    ids, _ = ordered(second_events(rows), last=last)
    places = {i: n for n, i in enumerate(ids)}
    await seconds_q.set_seq(conn, {r.event_id: places[r.event_id] for r in rows if r.seq != places[r.event_id]},
                            subscription_ids=[subscription_id])
    text = await seconds_q.body(conn, last)
    event = parse_event(json.loads(text)) if text else None
    if event is not None and event.subscription is not None:
        await q.upsert_states(conn, [state_row(event, event.subscription, places[last])])
        await seconds_q.sync_state_mrr(conn, subscription_id)  # its snapshot's, discounts read since included
    return True
