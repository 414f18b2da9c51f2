"""How each component of /health is rated: ok, warn, bad or off (None: no line for it).

One function per line decides its state from the HealthSnapshot; /health (bot/blocks/health.py) turns it into a
light and the dashboard (bot/web/view.py) into a dot, so the two cannot disagree on what needs attention.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Final

from bot.access import GroupCheck
from bot.answers.snapshots import HealthSnapshot
from bot.delivery.standing import ChannelStatus, Membership
from bot.stripe.refused import Standing

OK, WARN, BAD, OFF = "ok", "warn", "bad", "off"
QUEUED_LATE: Final = dt.timedelta(minutes=1)  # a message or webhook queued longer than this is worth a look
SITE_SLOW_MS: Final = 3000
STRIPE_POLL_STALE: Final = dt.timedelta(minutes=5)  # the poll runs every minute


def _late(s: HealthSnapshot, oldest: dt.datetime | None) -> bool:
    return oldest is not None and s.now - oldest > QUEUED_LATE


def database(s: HealthSnapshot) -> str:
    return OK if s.database_ok else BAD


def socket(s: HealthSnapshot) -> str | None:
    """Only when Socket Mode is configured and not connected."""
    return None if s.socket is None or s.socket.connected else WARN


def last_webhook(s: HealthSnapshot) -> str | None:
    if s.last_webhook_at is not None:
        return OK
    return None if "last webhook" in s.missing else OFF


def last_order(s: HealthSnapshot) -> str | None:
    if s.last_order_at is not None:
        return WARN if s.order_silence_suspicious else OK
    return None if "last order" in s.missing else OFF


def delivery(s: HealthSnapshot) -> str | None:
    """The outbox: stuck is red, a message queued over a minute yellow."""
    if s.backlog is None:
        return None
    if s.backlog.pending == 0:
        return OK
    if s.delivery_stuck and s.backlog.oldest_due is not None:
        return BAD
    return WARN if _late(s, s.backlog.oldest) else OK


def intake(s: HealthSnapshot) -> str | None:
    """Webhooks stored in a burst and not applied yet; no line when none wait."""
    if s.inbox is None or not s.inbox.waiting:
        return None
    return WARN if _late(s, s.inbox.oldest) else OK


def delivery_errors(s: HealthSnapshot) -> str | None:
    errs = s.delivery_errors
    if errs is None:
        return None
    return (BAD if errs.permanent else WARN) if errs.count else OK


def channel(c: ChannelStatus) -> str:
    """A public channel not joined yet is fine (joined on first use); one that takes posts only is yellow; one
    messages cannot reach is red."""
    if c.membership in (Membership.MEMBER, Membership.PUBLIC_NOT_JOINED):
        return OK
    return WARN if c.usable else BAD


def site(s: HealthSnapshot) -> str:
    p = s.probe
    if not s.site_url or p is None:
        return OFF
    if not p.ok:
        return BAD
    return OK if (p.elapsed_ms or 0) <= SITE_SLOW_MS else WARN


def stripe_sync(s: HealthSnapshot) -> str | None:
    """The Events API: failing is red; not polled lately, or events the webhook missed, yellow."""
    sync = s.stripe_sync
    if sync is None:
        return None if "stripe events api" in s.missing else OFF
    if sync.failing:
        return BAD
    stale = sync.last_poll_at is None or s.now - sync.last_poll_at > STRIPE_POLL_STALE
    return WARN if stale or sync.recovered_24h else OK


def stripe_fees(s: HealthSnapshot) -> str | None:
    """Orders whose fees are still to be read (fine) or were given up on (yellow); no line when none."""
    fees = s.stripe_fees
    if fees is None or not (fees.waiting or fees.given_up):
        return None
    return WARN if fees.given_up else OK


def stripe_refusal(r: Standing) -> str:
    """A job Stripe refuses: the key itself rejected (401) is red; a permission a restricted key lacks (403) yellow,
    the rest of the bot running."""
    return BAD if r.status == 401 else WARN


def team_read(s: HealthSnapshot) -> str | None:
    """Slack refused team.info for want of team:read: people of the organisation's other workspaces are refused."""
    return BAD if s.team_read_missing else None


def job_failures(s: HealthSnapshot) -> str | None:
    return BAD if s.job_failures else None


def responders(groups: Sequence[GroupCheck]) -> str | None:
    """ALERT_RESPONDERS' user groups: red while Slack cannot list one (its members are refused on alerts)."""
    if not groups:
        return None
    return BAD if any(g.error is not None for g in groups) else OK
