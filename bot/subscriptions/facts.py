"""What one customer.subscription.* event says about its subscription, read from any API version's shape."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.subscriptions.mrr import COUNTED

# Orders the events of one second: a subscription is created before it is updated, updated before deleted.
RANKS = {"customer.subscription.created": 0, "customer.subscription.updated": 1, "customer.subscription.deleted": 2}


@dataclass(frozen=True, slots=True)
class SubscriptionFacts:
    """A subscription as the event's object shows it, plus what `previous_attributes` says it was before.

    `mrr` is what it adds to the store's MRR now (0 unless active or past_due, and collected); `gross_mrr` what
    its items are worth whatever the status (what its churn loses; 0 when it ended in its trial, or with its
    collection paused, or never paid). Both, and `previous_mrr`, are in MRR units (bot/subscriptions/mrr.py
    PER_MINOR to a minor unit a month), as stored: rounded to a minor unit only where shown. The `previous_*`
    fields are None when the event does not say (only customer.subscription.updated carries previous_attributes)."""

    id: str
    customer: str | None
    status: str
    currency: str
    mrr: int
    gross_mrr: int
    plan: str | None
    signature: tuple[tuple[str, int], ...]  # (price id, quantity) per item: a plan change changes it
    cancel_at_period_end: bool = False
    cancel_at: dt.datetime | None = None
    current_period_end: dt.datetime | None = None
    started_at: dt.datetime | None = None
    canceled_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    previous_status: str | None = None
    previous_mrr: int | None = None  # counted, as `mrr`
    previous_plan: str | None = None
    previous_signature: tuple[tuple[str, int], ...] | None = None
    previous_cancel: bool | None = None  # whether a cancellation was scheduled before this event
    # `pause_collection` set: Stripe leaves the status `active` but collects nothing (invoices voided, left as
    # drafts or marked uncollectible), so it is no recurring revenue while it lasts. None: the event does not say
    # it changed (previous_attributes without `pause_collection`).
    collection_paused: bool = False
    previous_collection_paused: bool | None = None
    # A deleted subscription whose trial ended in Stripe's pause for want of a payment method
    # (trial_settings.end_behavior.missing_payment_method = pause): it may never have paid (apply.py asks the ledger).
    paused_at_trial_end: bool = False
    # Set only when the event names a Discount by id (basil on): what `mrr` and the MRR before the event are made
    # of, to recompute once the Discounts are read (bot/subscriptions/pricing.py); None otherwise.
    pricing: Mapping[str, Any] | None = None
    before_pricing: Mapping[str, Any] | None = None

    @property
    def paying(self) -> bool:
        """Whether it counts in MRR now."""
        return self.status in COUNTED and not self.collection_paused

    @property
    def was_paying(self) -> bool | None:
        """Whether it counted in MRR just before the event; None when the event does not say its status or its
        paused collection changed."""
        if self.previous_status is None and self.previous_collection_paused is None:
            return None
        paused = self.collection_paused if self.previous_collection_paused is None else self.previous_collection_paused
        return (self.previous_status or self.status) in COUNTED and not paused

    @property
    def cancel_scheduled(self) -> bool:
        """Whether it is set to end (at period end, or at a chosen date) while still running."""
        return self.status not in ("canceled", "incomplete_expired") and (
            self.cancel_at_period_end or self.cancel_at is not None)

    @property
    def cancels_on(self) -> dt.datetime | None:
        """When a scheduled cancellation takes effect."""
        return self.cancel_at or self.current_period_end
