"""Checkouts in progress, which no webhook announces: with STRIPE_API_KEY, every minute, the Checkout Sessions still
open from the last 30 minutes are listed and kept as pending sessions, so "in checkout" (the original guide's
pendingCheckouts) and today's conversion count them, as the guide's own site did by writing a row when a checkout
started.

A listed session is only added when nothing has told of it yet, as pending *as of its creation*: a listing read
just before a completion can never turn the completed checkout back into an open one, nor put back the amount
the listing saw, and any event about a listed session (completed, expired, failed) is newer and wins the
intake's merge (queries/intake.py CHECKOUT_MERGE). That also makes the job idempotent, so every replica runs it
(a request a minute each) rather than taking a lock across HTTP calls; a key without the Checkout Sessions read
permission is logged once, asked again hourly (bot/stripe/refused.py), and changes nothing else.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp

from bot.db import DB_UNAVAILABLE
from bot.deps import Deps
from bot.stripe.events_api import KeyRejected, Sleep, StripeApi, StripeApiError
from bot.stripe.fields import currency, integer, mapping, string, string_pairs, stripe_id, timestamp
from bot.stripe.refused import Refusal
from queries import intake

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 60
OPEN_WINDOW = dt.timedelta(minutes=30)  # the guide's pendingCheckouts window
PATH = "/v1/checkout/sessions"


def pending_row(obj: Mapping[str, Any]) -> intake.CheckoutRow | None:
    """An open Checkout Session as a pending checkout row, as of its creation; None if it is not one."""
    session_id, created = stripe_id(obj), timestamp(obj.get("created"))
    if session_id is None or created is None or obj.get("status") != "open" or obj.get("mode") == "setup":
        return None
    details = mapping(obj, "customer_details")
    return intake.CheckoutRow(session_id, "pending", integer(obj, "amount_total"), currency(obj),
                              string(details, "email") or string(obj, "customer_email"),
                              dict(string_pairs(mapping(obj, "metadata"))), created, None, created)


async def open_sessions(api: StripeApi, *, now: dt.datetime) -> list[intake.CheckoutRow]:
    """Every session still open that was created in the last OPEN_WINDOW."""
    since = str(int((now - OPEN_WINDOW).timestamp()))
    rows: list[intake.CheckoutRow] = []
    async for page in api.pages(PATH, [("status", "open"), ("created[gte]", since)]):
        rows += [row for obj in page.data if (row := pending_row(obj)) is not None]
    return rows


class OpenCheckoutsJob:
    """The job's state between runs: its dependencies, and Stripe's refusal if it stands."""

    def __init__(self, deps: Deps, *, sleep: Sleep = asyncio.sleep) -> None:
        self.deps = deps
        self.sleep = sleep
        # A 401/403: said once, asked again hourly, shown in /health meanwhile.
        self.refusal = Refusal(log, "Stripe open checkouts", shown=deps.refusals)

    async def tick(self) -> int | None:
        """One run: how many open sessions were added as pending (those no event or earlier listing told of);
        None when skipped (no key, Stripe or the database away, or the key refused)."""
        key = self.deps.settings.stripe_api_key
        now = self.deps.clock()
        if key is None or self.refusal.waiting(now):
            return None
        try:
            async with aiohttp.ClientSession() as session:
                api = StripeApi(session, api_key=key.get_secret_value(), base_url=self.deps.settings.stripe_api_url,
                                sleep=self.sleep)
                rows = await open_sessions(api, now=now)
            self.refusal.answered()
            return await intake.add_open_checkouts(self.deps.pool, rows)
        except KeyRejected as exc:
            self.refusal.refused(exc, now)
        except StripeApiError as exc:
            log.warning("Stripe open checkouts: %s", exc)
        except DB_UNAVAILABLE as exc:
            log.warning("open checkouts not stored: database unavailable: %s", exc)
        return None
