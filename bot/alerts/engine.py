"""The alert pipeline: measure → reconcile with stored alerts → route → notify, each stage small and testable.

Alertmanager's semantics adapted to Slack: an alert (rule + labels) fires once as one message that is then
updated in place; reminders go to its thread every repeat interval until someone acknowledges or silences
it; resolution updates the message and replies in the thread. State lives in PostgreSQL, and every
notification is queued in the outbox in the same transaction that records it, so neither a restart nor a
second replica can notify twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from enum import StrEnum

import asyncpg

from bot.alerts.notifier import Notifier
from bot.alerts.rules import Context, Finding, Rule, RuleSet, Severity
from bot.blocks.alerts import RULE_OFF
from bot.db import DB_UNAVAILABLE
from queries import alert_actions as audit
from queries import alert_log, locks
from queries import alerts as q
from queries.executor import Executor

log = logging.getLogger(__name__)

# Resolved by hand while the condition still holds: quiet for this long (time for a fix to take), then it fires
# anew. Never "until it clears": that kept a real "Site down" silent for the whole outage. Rules counting events
# in a window hold longer: Rule.resolve_hold.
MANUAL_RESOLVE_GRACE = dt.timedelta(minutes=15)
# A silence still running, or an ack on an alert that cleared by itself this recently, carries over to a new alert
# of the same fingerprint (Alertmanager's silences match labels, not one alert): it is the same incident.
ACK_CARRIES_FOR = dt.timedelta(hours=1)
SALES_FAMILY = "sales"  # no_sales, no_order_1h, sales_stopped, sales_low_today: judged on business days only

def fingerprint(rule: str, labels: dict[str, str]) -> str:
    """An alert's identity: its rule and its labels."""
    return rule + "".join(f"|{k}={labels[k]}" for k in sorted(labels))


def measurable(rule: Rule, ctx: Context) -> bool:
    """Whether the rule can be judged at all now: enabled, with a site when it probes one, and with or without a
    rhythm as it needs. An open alert of a rule that cannot is resolved outright."""
    return rule.enabled and (bool(ctx.site_url) or not rule.needs_site) and rule.applies(ctx.rhythm)


def active_rules(rules: RuleSet, ctx: Context) -> list[Rule]:
    """Rules that may open alerts now: measurable, inside business hours when they need, and the no-sales family
    (fixed and rhythm rules) on business days only (BUSINESS_DAYS)."""
    in_hours, open_today = ctx.in_business_hours(), ctx.business_day()
    return [r for r in rules.rules
            if measurable(r, ctx) and (in_hours or not r.business_hours_only)
            and (open_today or r.family != SALES_FAMILY)]


async def measure(conn: asyncpg.Connection, rules: list[Rule], ctx: Context) -> dict[str, list[Finding]]:
    """Stage 1: every given rule's findings. A rule whose check fails is logged and left out of this run (its open
    alert neither seen again nor resolved), in a savepoint so its failed query leaves the transaction usable: one
    broken rule must not stop the others, criticals included. The database going away still ends the run."""
    found = {}
    for rule in rules:
        try:
            async with conn.transaction():
                found[rule.name] = await rule.check(conn, rule, ctx)
        except DB_UNAVAILABLE:
            raise
        except Exception:  # any fault of one rule's check (its SQL, an overflow) skips that rule only
            log.exception("alert rule %s failed and is skipped this run", rule.name)
    return found


class Kind(StrEnum):
    """A notification decision."""

    FIRE = "fire"
    REMIND = "remind"
    UNSILENCE = "unsilence"


@dataclass(frozen=True, slots=True)
class Decision:
    """What to send about one alert."""

    alert: q.AlertRow
    kind: Kind


def route(open_alerts: list[q.AlertRow], *, now: dt.datetime, in_business_hours: bool,
          repeat: dt.timedelta, quiet: bool = False, owed: frozenset[int] = frozenset()) -> list[Decision]:
    """Stage 3 (pure): which open alerts to announce, remind about, or un-silence now (warnings wait outside
    business hours and inside quiet hours). `owed`: criticals posted (or made critical) inside quiet hours without
    their mention, reminded (paging) as soon as those end, not a repeat interval later, and those just made critical
    outside them (an edit pages nobody), reminded at once; one demoted since, or with no on-call mention to page,
    owes nothing (it would remind at every check, its reminder never paging)."""
    critical_families = {a.family for a in open_alerts if a.severity == Severity.CRITICAL}
    decisions = []
    for a in open_alerts:
        if a.severity == Severity.INFO:
            continue  # info findings go into the daily report, never the channel
        held = a.severity == Severity.WARNING and (quiet or not in_business_hours)
        silenced = a.silenced_until is not None and a.silenced_until > now
        # A firing critical mutes its family's warnings (Alertmanager's inhibition): their post and reminders.
        inhibited = a.severity == Severity.WARNING and a.family in critical_families
        if a.notified_at is None:  # silenced while held or inhibited (from App Home): not posted until it ends
            if not held and not inhibited and not silenced:
                decisions.append(Decision(a, Kind.FIRE))
            continue
        if a.silenced_until is not None and not silenced:
            decisions.append(Decision(a, Kind.UNSILENCE))
            continue
        last = a.last_reminder_at or a.notified_at
        due = now - last >= repeat or (a.id in owed and not quiet and a.severity == Severity.CRITICAL)
        if not silenced and not held and not inhibited and a.acknowledged_by is None and due:
            decisions.append(Decision(a, Kind.REMIND))
    return decisions


async def evaluate(conn: asyncpg.Connection, *, rules: RuleSet, ctx: Context, notifier: Notifier) -> int:
    """One evaluation in one transaction; returns how many alerts it notified about or changed."""
    async with conn.transaction():
        # One evaluation at a time, whatever leadership believes: a second one waits and sees the first's alerts.
        await locks.xact_lock(conn, locks.EVALUATION)
        open_by_fp = {a.fingerprint: a for a in await q.open_alerts(conn)}
        opening = {r.name: r for r in active_rules(rules, ctx)}
        # A rule asleep now (outside business hours, on a closed day) is still measured while it has an alert open,
        # so that alert resolves once its condition clears — a sale after closing — and not merely because hours
        # closed; asleep, it opens nothing new.
        with_open = {a.rule for a in open_by_fp.values()}
        judged = opening | {r.name: r for r in rules.rules
                            if r.name in with_open and r.name not in opening and measurable(r, ctx)}
        measured = await measure(conn, list(judged.values()), ctx)
        current = {fingerprint(name, dict(f.labels)): (judged[name], f)
                   for name, findings in measured.items() for f in findings}
        await q.clear_rearm(conn, active=list(current), rules=list(measured))
        sent = await _reconcile(conn, open_by_fp, current, opening=opening, ctx=ctx, notifier=notifier)
        unmeasured = {name for name in judged if name not in measured}  # its check failed: judge it next time
        sent += await _resolve_cleared(conn, open_by_fp, current, judged=judged, ctx=ctx, notifier=notifier,
                                       unmeasured=unmeasured)
        fresh = [await _reload(conn, a.id) for a in open_by_fp.values()]
        sent += await _route_and_notify(conn, fresh, rules=rules, ctx=ctx, notifier=notifier)
    return sent


async def _reconcile(conn: asyncpg.Connection, open_by_fp: dict[str, q.AlertRow],
                     current: dict[str, tuple[Rule, Finding]], *, opening: dict[str, Rule], ctx: Context,
                     notifier: Notifier) -> int:
    """Stage 2: what holds now is an open alert seen again, in the severity its rule has now (re-rendered when
    Settings changed it), or a new alert when its rule may open one; how many alerts changed severity."""
    waits: dict[dt.timedelta, list[str]] = {}
    for fp, (rule, f) in current.items():
        if fp not in open_by_fp and rule.name in opening and f.opens:
            waits.setdefault(rule.resolve_hold(MANUAL_RESOLVE_GRACE), []).append(fp)
    blocked = {fp for grace, fps in waits.items() for fp in await q.awaiting_rearm(conn, fps, since=ctx.now - grace)}
    changed = []
    for fp, (rule, finding) in current.items():
        if (alert := open_by_fp.get(fp)) is not None:
            await q.seen_again(conn, alert_id=alert.id, at=ctx.now, summary=finding.summary, value=finding.value,
                               severity=rule.severity.value)
            if alert.severity != rule.severity.value:
                changed.append(alert.id)
        elif rule.name in opening and finding.opens and fp not in blocked:
            open_by_fp[fp] = await q.insert_alert(
                conn, fingerprint=fp, rule=rule.name, family=rule.family, severity=rule.severity.value,
                labels=dict(finding.labels), title=rule.title, summary=finding.summary, value=finding.value,
                at=ctx.now)
            await audit.carry_over(conn, alert_id=open_by_fp[fp].id, fingerprint=fp, now=ctx.now,
                                   ack_since=ctx.now - ACK_CARRIES_FOR)
    for alert_id in changed:
        await notifier.changed(conn, await _reload(conn, alert_id), ctx.now, "severity")
    return len(changed)


async def _resolve_cleared(conn: asyncpg.Connection, open_by_fp: dict[str, q.AlertRow],
                           current: dict[str, tuple[Rule, Finding]], *, judged: dict[str, Rule], ctx: Context,
                           notifier: Notifier, unmeasured: set[str]) -> int:
    """Resolve (and drop from `open_by_fp`) the open alerts whose condition cleared, and those of rules that are
    off now (disabled, their site URL removed, replaced by the rhythm rules, gone), which could never clear."""
    resolved = 0
    for fp, a in list(open_by_fp.items()):
        rule = judged.get(a.rule)
        if a.rule in unmeasured or (rule is not None and (fp in current or _kept_firing(a, rule, ctx.now))):
            continue
        # A rule that is off now closes its alert unwatched: said so, never "✅ Resolved" (the problem may go on).
        await q.resolve(conn, alert_id=a.id, at=ctx.now, reason=RULE_OFF if rule is None else None)
        await notifier.resolved(conn, await _reload(conn, a.id), ctx.now)
        resolved += 1
        del open_by_fp[fp]
    return resolved


def _kept_firing(alert: q.AlertRow, rule: Rule, now: dt.datetime) -> bool:
    """Whether an alert no longer true stays open: its condition held less than `keep_firing_for` ago."""
    return now - alert.last_seen_at < rule.keep_firing_for


async def _route_and_notify(conn: asyncpg.Connection, open_alerts: list[q.AlertRow], *, rules: RuleSet,
                            ctx: Context, notifier: Notifier) -> int:
    """Stages 3 and 4 for the open alerts; how many notifications were queued."""
    # Without an on-call mention nothing pages, so nothing is owed: "owed" would remind at every check, unpaid.
    owed = await alert_log.pages_owed(conn, [a.id for a in open_alerts]) if notifier.mention else {}
    decisions = route(open_alerts, now=ctx.now, in_business_hours=ctx.in_business_hours(),
                      repeat=rules.repeat_interval, quiet=ctx.quiet(), owed=frozenset(owed))
    for d in decisions:
        if d.kind is Kind.FIRE:
            alert = d.alert
            if alert.silenced_until is not None:  # silenced before it was ever posted, now over: nothing to undo
                await q.silence(conn, alert_id=alert.id, until=None, by=None)
                alert = await _reload(conn, alert.id)
            await notifier.fire(conn, alert, ctx.now)
        elif d.kind is Kind.REMIND:
            await notifier.remind(conn, d.alert, ctx.now, owed=owed.get(d.alert.id))
        else:
            await q.silence(conn, alert_id=d.alert.id, until=None, by=None)
            await notifier.changed(conn, await _reload(conn, d.alert.id), ctx.now, "unsilence")
    return len(decisions)


async def _reload(db: Executor, alert_id: int) -> q.AlertRow:
    row = await q.alert_by_id(db, alert_id)
    assert row is not None
    return row


async def act(conn: asyncpg.Connection, *, alert_id: int, action: str, user: str, now: dt.datetime,
              until: dt.datetime | None, notifier: Notifier, surface: str = "slack") -> bool:
    """A button: acknowledge, silence (until `until`) or resolve; False when the alert is already resolved.

    Every click is recorded (who, what, when, where) and an applied one is said in the alert's thread; one that
    changes nothing (`_already_so`: a double tap's second) is recorded as stale, as a click on a resolved one is."""
    async with conn.transaction():
        alert = await q.alert_by_id(conn, alert_id)
        open_ = alert is not None and alert.resolved_at is None
        repeated = alert is not None and open_ and _already_so(alert, action, user, until)
        await audit.record(conn, audit.AlertAction(
            alert_id=alert_id, user_id=user, action=action, outcome="applied" if open_ and not repeated else "stale",
            silenced_until=until if action == "silence" else None, surface=surface, at=now))
        if alert is None or not open_:
            return False
        if repeated:
            return True  # a double tap: the message and its thread say it once, and the user is not told again
        if action == "ack":
            await q.acknowledge(conn, alert_id=alert_id, by=user, at=now)
        elif action == "silence":
            await q.silence(conn, alert_id=alert_id, until=until, by=user)
        elif action == "resolve":
            await q.resolve(conn, alert_id=alert_id, at=now, by=user)
            await notifier.resolved(conn, await _reload(conn, alert_id), now)  # its thread reply names who
            return True
        changed = await _reload(conn, alert_id)
        await notifier.changed(conn, changed, now, action)
        await notifier.acted(conn, changed, now, action)
    return True


def _already_so(alert: q.AlertRow, action: str, user: str, until: dt.datetime | None) -> bool:
    """Whether the click asks for what already holds: the same person's ack, or their silence ending within the
    same minute (the message shows minutes; the two clicks of a double tap compute their ends a moment apart)."""
    if action == "ack":
        return alert.acknowledged_by == user
    if action == "silence" and until is not None and alert.silenced_until is not None:
        return alert.silenced_by == user and abs(alert.silenced_until - until) < dt.timedelta(minutes=1)
    return False
