"""The dashboard's Health card: one item per component /health rates, as plain text.

Each item's state comes from bot/answers/health_levels.py, the functions /health's lights come from, so whatever
/health marks 🟡 or 🔴 the card marks warn or bad. Components the card always showed keep their item when fine;
the others appear only when they need attention (a phone's card stays short).
"""

from __future__ import annotations

from collections.abc import Sequence
from zoneinfo import ZoneInfo

from bot.access import GroupCheck
from bot.affiliation import TEAM_READ_MISSING
from bot.answers import health_levels as level
from bot.answers.snapshots import HealthSnapshot
from bot.blocks.common import ago, counted
from bot.blocks.elements import local

Item = tuple[str, str, str]  # name, level, text
ATTENTION = (level.WARN, level.BAD)


def _core(h: HealthSnapshot, tz: ZoneInfo) -> list[Item]:  # long: one branch per component, as /health lists them
    items = [("Database", level.database(h), f"reachable · {h.database_rtt_ms:.0f} ms" if h.database_ok
              else "unreachable or too slow")]
    if (sock := h.socket) is not None and (light := level.socket(h)) is not None:
        error = f" · last error: {sock.last_error[:200]}" if sock.last_error else ""
        items.append(("Socket Mode", light, f"not connected since {local(sock.since, tz):%a %H:%M}"
                      f" ({ago(h.now - sock.since)}): commands, buttons and App Home wait{error}"))
    if (light := level.last_webhook(h)) is not None:
        items.append(("Last webhook", light, ago(h.now - h.last_webhook_at) if h.last_webhook_at is not None
                      else "none received yet"))
    if h.last_order_at is not None and (light := level.last_order(h)) is not None:
        note = "" if not h.order_silence_suspicious else \
            " · unusually quiet for this hour" if h.rhythm else " · quiet for over an hour in business hours"
        items.append(("Last order", light,
                      f"{local(h.last_order_at, tz):%a %H:%M} · {ago(h.now - h.last_order_at)}{note}"))
    if h.backlog is not None and (light := level.delivery(h)) is not None:
        stuck = light == level.BAD
        items.append(("Slack delivery", light, (f"{h.backlog.pending} waiting" + (" · stuck" if stuck else ""))
                      if h.backlog.pending else "nothing waiting"))
    if h.inbox is not None and level.intake(h) in ATTENTION:
        oldest = ago(h.now - h.inbox.oldest) if h.inbox.oldest else "?"
        items.append(("Webhook intake", level.WARN, f"{h.inbox.waiting:,} events stored and not applied yet,"
                      f" oldest received {oldest}"))
    if (e := h.delivery_errors) is not None and e.count and (light := level.delivery_errors(h)) is not None:
        items.append(("Slack errors (24 h)", light,
                      f"{e.count} ({e.permanent} permanent), last: {e.last_error or '?'}"))
    items += [(f"Slack channel {c.logical}", level.channel(c), c.describe())
              for c in h.channels if level.channel(c) in ATTENTION]
    return items


def _site(h: HealthSnapshot) -> Item:
    if not h.site_url:
        return "Site", level.site(h), "set SITE_URL to probe it"
    if (p := h.probe) is None:
        return "Site", level.site(h), "not checked yet"
    result = f"HTTP {p.status} in {(p.elapsed_ms or 0) / 1000:.1f} s" if p.ok else (p.error or "failed")
    return "Site", level.site(h), f"{result} · {ago(h.now - p.checked_at)}"


def _stripe(h: HealthSnapshot) -> list[Item]:
    """The Events API, the fees and any job Stripe refuses, only when they need attention."""
    items = []
    if (sync := h.stripe_sync) is not None and (light := level.stripe_sync(h)) in ATTENTION:
        polled = f"polled {ago(h.now - sync.last_poll_at)}" if sync.last_poll_at else "not polled yet"
        why = f" · failing: {(sync.last_error or '?')[:300]}" if sync.failing else \
            f" · {sync.recovered_24h} events recovered (24 h) that the webhook missed — check the endpoint" \
            if sync.recovered_24h else " (it runs every minute)"
        items.append(("Stripe Events API", str(light), polled + why))
    if (fees := h.stripe_fees) is not None and (light := level.stripe_fees(h)) in ATTENTION:
        waiting = f" · {counted(fees.waiting)} waiting to be read" if fees.waiting else ""
        items.append(("Stripe fees", str(light), f"{counted(fees.given_up)} given up on (\"not converted yet\";"
                      f" tried again daily){waiting}"))
    items += [(r.job, level.stripe_refusal(r), r.advice) for r in h.stripe_refusals]
    return items


def _responders(groups: Sequence[GroupCheck]) -> list[Item]:
    if level.responders(groups) not in ATTENTION:
        return []
    failed = [g for g in groups if g.error is not None]
    named = ", ".join(f"{g.group} ({g.error})" for g in failed)
    return [("Alert responders", level.BAD, f"Slack could not list user group{'s' * (len(failed) > 1)} {named}:"
             " their members cannot act on alerts — check the usergroups:read scope and ALERT_RESPONDERS")]


def health_items(h: HealthSnapshot, tz: ZoneInfo, groups: Sequence[GroupCheck] = ()) -> list[dict[str, str]]:
    """The card's items in /health's order; `groups`: ALERT_RESPONDERS' user groups as last looked up."""
    items = [*_core(h, tz), _site(h), *_stripe(h)]
    if level.job_failures(h) is not None:
        items.append(("Scheduler", level.BAD, f"{counted(len(h.job_failures), 'failed run')},"
                      f" last {h.job_failures[-1].job_id}"))
    if (light := level.team_read(h)) is not None:
        items.append(("Slack app", light, TEAM_READ_MISSING))
    items += _responders(groups)
    return [{"name": name, "level": light, "text": text} for name, light, text in items]
