"""Stage 4 of the alert pipeline: notification decisions turned into outbox messages, each recorded in the
alert's notification log in the same transaction."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from bot.alerts.rules import Severity
from bot.blocks.alerts import AlertView, action_reply, alert_message, reminder_message, resolved_reply
from bot.blocks.message import Message
from queries import alert_log, outbox
from queries import alerts as q
from queries.alert_log import FIRED_QUIETLY, PAGED, PROMOTED, PROMOTED_QUIETLY
from queries.executor import Executor


@dataclass(frozen=True, slots=True)
class Notifier:
    """Turns decisions into outbox messages and records them in the notification log."""

    tz: ZoneInfo
    mention: str
    updates: bool  # False with incoming webhooks: no buttons, no edits, no threads
    quiet: bool = False  # inside QUIET_HOURS: criticals post and remind without the mention, which they then owe

    def pages(self, a: q.AlertRow) -> bool:
        """Whether a notification about the alert pages on-call now: an open critical nobody has acknowledged
        (an ack carried over from the same incident included), outside quiet hours."""
        return (a.severity == Severity.CRITICAL and a.acknowledged_by is None and a.resolved_at is None
                and not self.quiet and bool(self.mention))

    def owes(self, a: q.AlertRow) -> bool:
        """Whether a critical shown now owes its page: it would page but for the quiet hours."""
        return (a.severity == Severity.CRITICAL and a.acknowledged_by is None and a.resolved_at is None
                and self.quiet and bool(self.mention))

    def view(self, a: q.AlertRow, now: dt.datetime) -> AlertView:
        """How the alert's message looks right now."""
        return AlertView(id=a.id, rule=a.rule, severity=a.severity, title=a.title, summary=a.summary,
                         started_at=a.started_at, now=now, acknowledged_by=a.acknowledged_by,
                         silenced_until=a.silenced_until, silenced_by=a.silenced_by, resolved_at=a.resolved_at,
                         resolved_by=a.resolved_by, resolved_reason=a.resolved_reason,
                         mention=self.mention if self.pages(a) else None, buttons=self.updates)

    async def _send(self, db: Executor, a: q.AlertRow, kind: str, msg: Message, *, op: str = "post",
                    broadcast: bool = False) -> int | None:
        n = await alert_log.log_notification(db, alert_id=a.id, kind=kind, outbox_id=None)
        target = a.message_outbox_id if op != "post" else None
        if op != "post" and (target is None or not self.updates):
            op, target = "post", None  # nothing to edit (webhooks): say it as a message of its own
        payload = msg.as_payload()
        if broadcast and op == "reply":  # a thread reply alone notifies only the thread's followers
            payload["reply_broadcast"] = True
        return await outbox.enqueue(db, dedupe_key=f"alert:{a.id}:{n}:{kind}", channel="alerts", kind="alert",
                                    payload=payload, op=op, target_id=target)

    async def fire(self, db: Executor, a: q.AlertRow, now: dt.datetime) -> None:
        """Post the alert's one message; a critical that would page but for the quiet hours owes its page."""
        msg = alert_message(self.view(a, now), tz=self.tz)
        msg_id = await self._send(db, a, FIRED_QUIETLY if self.owes(a) else "fire", msg)
        await q.set_notified(db, alert_id=a.id, at=now, outbox_id=msg_id)

    async def changed(self, db: Executor, a: q.AlertRow, now: dt.datetime, kind: str) -> None:
        """Re-render the message in place after a state change (ack, silence, un-silence, severity). An edit pages
        nobody, so an alert made a critical owes its page: inside quiet hours until they end, as one posted then
        does; outside them at once (reminded in the same evaluation), or once its silence ends if it has one."""
        if a.notified_at is None:
            return  # not posted yet: it is, as it is now, when routed
        if kind == "severity" and self.owes(a):
            kind = PROMOTED_QUIETLY
        elif kind == "severity" and self.pages(a):
            kind = PROMOTED
        if self.updates:
            await self._send(db, a, kind, alert_message(self.view(a, now), tz=self.tz), op="update")
        elif kind in (PROMOTED_QUIETLY, PROMOTED):  # webhooks cannot edit: the page is owed all the same
            await alert_log.log_notification(db, alert_id=a.id, kind=kind, outbox_id=None)

    async def acted(self, db: Executor, a: q.AlertRow, now: dt.datetime, action: str) -> None:
        """Say in the alert's thread who acknowledged or silenced it, and when."""
        if a.notified_at is not None and self.updates:
            await self._send(db, a, f"acted-{action}", action_reply(self.view(a, now), tz=self.tz), op="reply")

    async def remind(self, db: Executor, a: q.AlertRow, now: dt.datetime, *, owed: str | None = None) -> None:
        """A reminder in the message's thread; a critical's pages (the mention, also sent to the channel) outside
        quiet hours. `owed`: the notification kind that owes its page — a critical posted or made critical quietly,
        now that the quiet hours are over, or one just made critical (PROMOTED)."""
        pages = self.pages(a)
        msg = reminder_message(self.view(a, now), tz=self.tz, after_quiet=pages and owed not in (None, PROMOTED),
                               promoted=pages and owed == PROMOTED)
        await self._send(db, a, PAGED if pages else "remind", msg, op="reply", broadcast=pages)
        await q.set_reminded(db, alert_id=a.id, at=now)

    async def resolved(self, db: Executor, a: q.AlertRow, now: dt.datetime) -> None:
        """Mark the message resolved and say so in its thread (or post it, without updates)."""
        if a.notified_at is None:
            return  # never announced (held, inhibited, info): recorded for the report only
        view = self.view(a, now)
        await self._send(db, a, "resolve", alert_message(view, tz=self.tz), op="update")
        if self.updates:
            await self._send(db, a, "resolved-reply", resolved_reply(view, tz=self.tz), op="reply")
