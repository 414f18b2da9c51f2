"""Opening the Settings view and saving what it submits — for Slack (App Home button, `/sales settings`) and the
local feed alike: admins only, checked on open and again on submit (a submission can be forged)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping
from typing import Any

import aiohttp
import asyncpg
from slack_sdk.errors import SlackApiError

from bot.blocks import settings as view
from bot.blocks.settings import ChangeLine, changes_message, channel_block, denied_view, plain_number, settings_view
from bot.blocks.text import escape_mrkdwn
from bot.db import DB_UNAVAILABLE
from bot.delivery.senders import slack_error
from bot.deps import Deps
from bot.settings.form import SETTING_OF_CHANNEL, form_of, read_submission
from bot.settings.opened import block_of, mark, shown_marks, shown_metadata
from bot.settings.values import BY_KEY, RULE_PREFIX, current, effective, report_times, rule_to_store
from queries import channel_status, outbox
from queries import settings as q

log = logging.getLogger(__name__)


SETTINGS_ARG = "settings"  # `/sales settings`
# Slack wants a view_submission answered within 3 s, or it tells the admin it could not reach the app (while the
# change may still commit): the save gets this long, and past it the modal says so on its first field.
SAVE_BUDGET = 2.0
# The field the modal's own error about saving is shown on (errors must name an input block of the view).
SAVE_ERROR_BLOCK = channel_block("sales")
CHANNEL_KEYS = frozenset(SETTING_OF_CHANNEL.values())
REPORT_KEYS = frozenset({"MORNING_REPORT_AT", "EVENING_REPORT_AT"})


def is_settings_command(command: str, text: str) -> bool:
    """Whether a slash command asks for the Settings view."""
    return command == "/sales" and " ".join(text.split()).lower() == SETTINGS_ARG


def view_for(deps: Deps, user: str | None) -> dict[str, Any]:
    """The Settings modal with the values in force, or, for someone who is not an admin, why not."""
    if not deps.access.administers(user):
        return denied_view()
    form = form_of(deps.settings, deps.rules, deps.channels)
    return settings_view(form, metadata=shown_metadata(deps.settings, deps.rules, form))


async def open_view(deps: Deps, *, user: str | None, trigger_id: str) -> str | None:
    """views.open the Settings modal (or the refusal) on the trigger of a click or command; None once open, else
    why not (the trigger expired after 3 s, say), for the caller to tell the user."""
    if deps.slack is None:
        return "Slack is not configured"
    try:
        await deps.slack.views_open(trigger_id=trigger_id, view=view_for(deps, user))
    except SlackApiError as exc:
        error = slack_error(exc)
        log.warning("could not open the Settings view for %s: %s", user, error)
        return error
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        log.warning("could not open the Settings view for %s: %s", user, exc)
        return "Slack could not be reached"
    return None


def _shown(key: str, value: Any, added: tuple[str, ...] = ()) -> str:
    """A stored value as the change message shows it (mentions for the people `added` and channel ids, the rest
    escaped)."""
    if isinstance(value, list):
        return ", ".join(_member(str(u), added) for u in value) or "nobody picked"
    if isinstance(value, dict):
        state = "off" if not value.get("enabled") else str(value.get("severity"))
        threshold = value.get("threshold")
        return state + (f", threshold {plain_number(threshold)}" if isinstance(threshold, int | float) else "")
    text = str(value)
    if key.endswith("_CHANNEL") and text[:1] in "CG" and text.isalnum():
        return f"<#{text}>"
    return escape_mrkdwn(text) if text else "none"


def _member(who: str, added: tuple[str, ...]) -> str:
    """A person or user group picked (readers, responders): a person this change adds is mentioned (they learn what
    they may now do); one kept or removed is named by id, inert, not pinged by a change that is not news to them;
    a user group is named by id, never pinged whole."""
    if who in added and who[:1] in "UW" and who.isascii() and who.isalnum():
        return f"<@{who}>"
    return f"group {escape_mrkdwn(who)}" if who[:1] == "S" else escape_mrkdwn(who)


def _added(before: Any, after: Any) -> tuple[str, ...]:
    """The people and groups a list setting (readers, responders) gains in this change: after − before."""
    if not isinstance(after, list):
        return ()
    had = {str(u) for u in before} if isinstance(before, list) else set()
    return tuple(str(u) for u in after if str(u) not in had)


def _label(deps: Deps, key: str) -> str:
    if key.startswith(RULE_PREFIX):
        name = key.removeprefix(RULE_PREFIX)
        title = next((r.title for r in deps.live.base_rules.rules if r.name == name), name)
        return f"rule “{title}”"
    return BY_KEY[key].label


class RefusedFields(Exception):
    """Fields the admin changed that may not be saved as they stand (another admin changed them, or what another
    admin changed since makes them wrong): the errors to show, by input block."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(errors)
        self.errors = errors


def _by(who: str | None) -> str:
    return f"<@{who}>" if who and who.isalnum() else ""


async def _stale(conn: asyncpg.Connection, *, user: str, key: str, shown: frozenset[str] | None,
                 before: Any) -> str | None:
    """Why this field may not be saved: changed by another admin since the view showed it (None: it may)."""
    if shown is None or mark(key, before) in shown:
        return None
    who = await q.last_changed_by(conn, key=key)
    if who == user:  # their own change, from another Settings view: the later one wins
        return None
    by = f" by {_by(who)}" if _by(who) else ""
    return f"Changed{by} since you opened this; reopen Settings to see it."


async def _environment_channel_id(deps: Deps, conn: asyncpg.Connection, configured: str) -> str | None:
    """The Slack id the environment's channel (a name, usually) resolves to: as this replica's directory has it
    while that channel is in force, else as a replica stored it (channel_status keeps a row per configured value,
    so it outlives an override); None when it was never resolved."""
    if configured[:1] in "CG" and configured.isalnum():
        return configured
    status = deps.channels.find(configured) if deps.channels is not None else None
    if status is not None and status.configured == configured and status.channel_id:
        return status.channel_id
    return next((r.channel_id for r in await channel_status.stored(conn)
                 if r.configured == configured and r.channel_id), None)


async def _to_store(deps: Deps, conn: asyncpg.Connection, key: str, after: Any, default: Any) -> Any:
    """What to store for a changed value; None (the stored one is removed) when it is the default's: a rule's
    parts equal to the rules file's are left to the file, and the environment's channel may be picked by its id."""
    if key.startswith(RULE_PREFIX) and isinstance(after, Mapping) and isinstance(default, Mapping):
        return rule_to_store(after, default)
    if after == default:
        return None
    if key in CHANNEL_KEYS and isinstance(default, str) and \
            after == await _environment_channel_id(deps, conn, default):
        return None
    return after


async def _unordered_reports(deps: Deps, conn: asyncpg.Connection, stored: Mapping[str, Any],
                             changes: Mapping[str, Any]) -> dict[str, str]:
    """The errors to show when the report times stored once these changes are saved are out of order (the morning
    report not before the evening one): a time changed in a view opened before another admin moved the other one
    is valid against what it showed, but stored as it is the pair would be dropped for the environment's."""
    if not REPORT_KEYS & changes.keys():
        return {}
    after = {k: v for k, v in {**stored, **changes}.items() if v is not None}
    morning, evening = report_times(deps.live.env, after)
    if morning < evening:
        return {}
    if REPORT_KEYS <= changes.keys():  # both from this view (checked there, unless forged)
        return {view.EVENING: "The evening report must come after the morning report."}
    if "MORNING_REPORT_AT" in changes:
        other, at, block, ask = "EVENING_REPORT_AT", evening, view.MORNING, "a morning time before it"
    else:
        other, at, block, ask = "MORNING_REPORT_AT", morning, view.EVENING, "an evening time after it"
    who = _by(await q.last_changed_by(conn, key=other))
    by = f" (changed by {who})" if who else ""
    return {block: f"{BY_KEY[other].label.capitalize()} is now {at:%H:%M}{by}: pick {ask}."}


async def _changes(conn: asyncpg.Connection, *, user: str, values: Mapping[str, Any],
                   shown: frozenset[str] | None, before: Mapping[str, Any]) -> dict[str, Any]:
    """The values the admin changed, by key (left as the view showed them: unchanged, so another admin's newer
    value stays); RefusedFields for a field another admin changed since the view was opened."""
    changed: dict[str, Any] = {}
    stale: dict[str, str] = {}
    for key, after in values.items():
        if key not in before or before[key] == after or (shown is not None and mark(key, after) in shown):
            continue
        if (why := await _stale(conn, user=user, key=key, shown=shown, before=before[key])) is not None:
            stale[block_of(key, after=after, before=before[key])] = why
        else:
            changed[key] = after
    if stale:
        raise RefusedFields(stale)
    return changed


async def save(deps: Deps, *, user: str, values: Mapping[str, Any],
               shown: frozenset[str] | None = None) -> list[ChangeLine]:
    """Store what the admin changed (from what the view showed, `shown`, when known; else from the values in
    force), audit each change and post a summary to the alerts channel, all in one transaction; then put it in
    force here (the commit's NOTIFY tells the other replicas). A field another admin changed since the view
    was opened, or made wrong by such a change, raises RefusedFields, and nothing is saved."""
    now = deps.clock()
    defaults = current(deps.live.env, deps.live.base_rules)
    async with deps.pool.acquire() as conn, conn.transaction():
        await q.lock_for_change(conn)  # held to the commit: what is checked below is what is stored over
        stored = {o.key: o.value for o in await q.overrides(conn)}
        before = current(*effective(deps.live.env, deps.live.base_rules, stored))
        changed = await _changes(conn, user=user, values=values, shown=shown, before=before)
        to_store = {key: await _to_store(deps, conn, key, after, defaults.get(key)) for key, after in changed.items()}
        if errors := await _unordered_reports(deps, conn, stored, to_store):
            raise RefusedFields(errors)
        lines: list[ChangeLine] = []
        for key, after in changed.items():
            await q.put(conn, key=key, value=to_store[key], user_id=user, at=now)
            await q.audit(conn, q.Change(at=now, user_id=user, key=key, before=before[key], after=after))
            added = _added(before[key], after)
            lines.append(ChangeLine(_label(deps, key), _shown(key, before[key]), _shown(key, after, added),
                                    people=added))
        if lines:
            msg = changes_message(user, lines)
            await outbox.enqueue(conn, dedupe_key=f"settings:{now.isoformat()}:{secrets.token_hex(4)}",
                                 channel="alerts", kind="settings", payload=msg.as_payload())
    if lines:
        log.info("settings changed by %s: %s", user, "; ".join(f"{c.label} {c.before} → {c.after}" for c in lines))
        await deps.live.reload(deps.pool)
    return lines


async def submit(deps: Deps, *, user: str | None, state: Mapping[str, Any],
                 metadata: str | None = None) -> dict[str, Any] | None:
    """A submitted Settings view (`metadata`: its private_metadata, what it showed): the ack body Slack needs
    (errors on fields, or the refusal), or None once saved (Slack then closes the modal)."""
    if user is None or not deps.access.administers(user):
        log.warning("refused a Settings submission from %s: not an admin", user)
        return {"response_action": "update", "view": denied_view()}
    read = read_submission(state, settings=deps.settings, rules=deps.rules, directory=deps.channels)
    if read.errors:
        return {"response_action": "errors", "errors": read.errors}
    try:
        async with asyncio.timeout(SAVE_BUDGET):
            await save(deps, user=user, values=read.values, shown=shown_marks(metadata))
    except RefusedFields as exc:
        log.info("refused a Settings submission from %s on %s", user, ", ".join(exc.errors))
        return {"response_action": "errors", "errors": exc.errors}
    except TimeoutError:
        log.warning("saving the Settings view took over %.0f s: the admin is told to check", SAVE_BUDGET)
        return _not_saved("Saving took too long (the database is slow or busy). Close and reopen Settings to see "
                          "what is in force, then try again.")
    except DB_UNAVAILABLE as exc:
        log.warning("could not save the Settings view: %s", exc)
        return _not_saved("The database can't be reached, so nothing was saved. Try again in a minute.")
    return None


def _not_saved(why: str) -> dict[str, Any]:
    return {"response_action": "errors", "errors": {SAVE_ERROR_BLOCK: why}}
