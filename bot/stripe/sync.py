"""Stripe reconciliation through the Events API: a poll from the last seen event, and a pass over the last days.

Every event goes through the webhook's own intake (`Deps.intake`, group-committed by `ingest_batch`) under
source "stripe". `webhook_logs` is keyed by (source, event id), so an event the webhook stored and the poll
then sees — or the reverse — is a no-op: stored once, pinged once, whichever path came first. Only
`webhook_logs.via` says how it came. Stripe keeps events for 30 days (https://docs.stripe.com/api/events).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.clock import Clock
from bot.intake.batch import Submission
from bot.intake.events import MalformedEvent
from bot.intake.result import IntakeResult, Outcome
from bot.stripe.events_api import PAGE_LIMIT, CursorGone, StripeApi
from bot.stripe.parse import HANDLED_TYPES, parse_event
from queries import stripe_sync as q
from queries.executor import Executor

log = logging.getLogger(__name__)

EVENTS_PATH = "/v1/events"
EVENTS_KEPT = dt.timedelta(days=30)  # how far back Stripe's Events API reaches
# With a webhook configured, an event is left to it this long before the poller takes it as missed:
# Stripe delivers within seconds, so a later find is a miss worth counting, not a race.
WEBHOOK_GRACE = dt.timedelta(minutes=3)
RECONCILE_WINDOW = dt.timedelta(days=3)  # as long as Stripe retries a webhook
RECONCILE_EVERY = dt.timedelta(hours=24)

Submit = Callable[[Submission], Awaitable[IntakeResult]]


def handled(raw: dict[str, Any]) -> bool:
    """Whether the intake handles this listed event's type.

    The listing asks for every type and this filters here: GET /v1/events takes at most 20 `types[]`
    (https://docs.stripe.com/api/events/list) and the intake handles more. Requests of 20 types each would be
    several streams, each with the cursor but none in Stripe's order against the others within one second, so
    the cursor could pass an event of one not yet fed from another; one unfiltered stream keeps Stripe's order,
    and the cursor moves over the events of other types as over any event consumed.
    """
    return raw.get("type") in HANDLED_TYPES


def created_of(raw: dict[str, Any]) -> dt.datetime | None:
    """An event's (or object's) `created` as an aware datetime."""
    value = raw.get("created")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return dt.datetime.fromtimestamp(value, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None


def submission(raw: dict[str, Any], *, via: str) -> Submission | None:
    """What the intake needs for one listed event; None (logged) when it cannot be stored as one."""
    try:
        text = json.dumps(raw)
        if "\\u0000" in text:  # PostgreSQL's jsonb cannot hold NUL; the webhook answers 400 for the same
            raise MalformedEvent("it holds a NUL character")
        event = parse_event(raw)
    except (MalformedEvent, RecursionError) as exc:
        log.warning("Stripe event %s skipped: %s", raw["id"], exc)
        return None
    except Exception:  # a parser bug on an odd payload must not stop the poll at this event every minute
        # The cursor would never pass this event, so nothing after it would be fed again. Skipped (and stored
        # nowhere), it is found again by the next reconciliation pass, for RECONCILE_WINDOW, once the bug is fixed.
        log.exception("Stripe event %s skipped: the parser failed on it", raw["id"])
        return None
    return Submission(source="stripe", event_id=raw["id"], event_type=str(raw["type"]), body=text, event=event,
                      via=via)


@dataclass(frozen=True, slots=True)
class Fed:
    """What feeding events to the intake did."""

    stored: int = 0  # events stored now (new to salespulse)
    queued: int = 0  # Slack messages queued for them

    def __add__(self, other: Fed) -> Fed:
        return Fed(self.stored + other.stored, self.queued + other.queued)


async def feed(submit: Submit, subs: Sequence[Submission]) -> Fed:
    """Submit events oldest first, a page at a time (one page lands in one intake batch, in order)."""
    total = Fed()
    for i in range(0, len(subs), PAGE_LIMIT):
        results = await asyncio.gather(*(submit(s) for s in subs[i:i + PAGE_LIMIT]))
        total += Fed(sum(r.outcome is not Outcome.DUPLICATE for r in results), sum(r.queued for r in results))
    return total


class EventsSync:
    """The poll and the reconciliation pass; the cursor and every fact live in PostgreSQL."""

    def __init__(self, *, db: Executor, api: StripeApi, submit: Submit, clock: Clock,
                 webhook_expected: bool) -> None:
        self.db = db
        self.api = api
        self.submit = submit
        self.clock = clock
        self.webhook_expected = webhook_expected
        # Polled while a webhook is configured: the webhook missed it. Otherwise polling is the intake.
        self.via = "recovered" if webhook_expected else "events_api"

    def _cutoff(self, now: dt.datetime) -> dt.datetime | None:
        return now - WEBHOOK_GRACE if self.webhook_expected else None

    async def poll(self) -> Fed:
        """Feed every handled event newer than the cursor that is not stored yet; move the cursor."""
        now = self.clock()
        state = await q.ensure_state(self.db, now=now)
        if state.cursor_id is None:
            return await self._catch_up(since=max(state.started_at, now - RECONCILE_WINDOW), now=now)
        try:
            return await self._forward(state.cursor_id, now=now)
        except CursorGone:
            since = max(state.cursor_created or state.started_at, now - EVENTS_KEPT)
            log.warning("Stripe no longer has cursor event %s: resuming from %s", state.cursor_id, since)
            return await self._catch_up(since=since, now=now)

    async def _forward(self, cursor: str, *, now: dt.datetime) -> Fed:
        # Stripe lists newest first; `ending_before` pages towards the newest, the page nearest the cursor
        # first (https://docs.stripe.com/api/pagination): each page, reversed, continues in time order.
        total = Fed()
        while True:
            page = await self.api.list(EVENTS_PATH, [("limit", str(PAGE_LIMIT)), ("ending_before", cursor)])
            fed, last, stopped = await self._consume(list(reversed(page.data)), now=now)
            total += fed
            if last is not None:
                cursor = last["id"]
                await q.set_cursor(self.db, event_id=cursor, created=created_of(last) or now)
            if stopped or last is None or not page.has_more:
                return total

    async def _catch_up(self, *, since: dt.datetime, now: dt.datetime) -> Fed:
        """No usable cursor: everything since `since`, then the newest handled event becomes the cursor (up to 30
        days of events are held here: those of other types are not kept)."""
        events: list[dict[str, Any]] = []
        async for page in self.api.pages(EVENTS_PATH, [("created[gte]", str(int(since.timestamp())))]):
            events.extend(e for e in page.data if handled(e))
        events.reverse()
        fed, last, _ = await self._consume(events, now=now)
        if last is not None:
            await q.set_cursor(self.db, event_id=last["id"], created=created_of(last) or now)
        return fed

    async def _consume(self, events: list[dict[str, Any]], *, now: dt.datetime
                       ) -> tuple[Fed, dict[str, Any] | None, bool]:
        """Feed the unknown events (oldest first) up to the first one still left to the webhook.

        Returns what was fed, the last event consumed (the new cursor) and whether it stopped early."""
        known = await q.known_event_ids(self.db, [e["id"] for e in events if handled(e)])
        cutoff = self._cutoff(now)
        subs: list[Submission] = []
        last: dict[str, Any] | None = None
        for raw in events:
            if handled(raw) and raw["id"] not in known:
                created = created_of(raw)
                if cutoff is not None and created is not None and created > cutoff:
                    return await feed(self.submit, subs), last, True
                if (sub := submission(raw, via=self.via)) is not None:
                    subs.append(sub)
            last = raw
        return await feed(self.submit, subs), last, False

    async def reconcile(self) -> Fed:
        """Feed every handled event of the last days that is not stored (the webhook missed it)."""
        now = self.clock()
        state = await q.ensure_state(self.db, now=now)
        start = max(now - RECONCILE_WINDOW, state.started_at)
        end = self._cutoff(now) or now
        unknown: list[dict[str, Any]] = []
        if start < end:
            params = [("created[gte]", str(int(start.timestamp()))), ("created[lte]", str(int(end.timestamp())))]
            async for page in self.api.pages(EVENTS_PATH, params):
                listed = [e for e in page.data if handled(e)]
                known = await q.known_event_ids(self.db, [e["id"] for e in listed])
                unknown.extend(e for e in listed if e["id"] not in known)
        unknown.reverse()  # oldest first, as they happened
        fed = await feed(self.submit, [s for raw in unknown if (s := submission(raw, via=self.via)) is not None])
        await q.record_reconciled(self.db, at=now)
        if fed.stored and self.webhook_expected:
            log.warning("recovered %d Stripe events the webhook missed — check the endpoint", fed.stored)
        return fed
