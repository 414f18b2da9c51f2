"""The Settings view (a modal): channels, time zone, business hours and days, report times, quiet hours, who
reads revenue and who acts on alerts, and each alert rule's severity (or off) and threshold. Pure.

Every input carries its own block_id (what `response_action: errors` names) and the action_id `value`.
A modal holds at most 100 blocks: this one is about 45, two per rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from bot.blocks.elements import context, divider, header, message, section
from bot.blocks.message import Block, Message, truncate
from bot.blocks.text import escape_mrkdwn

CALLBACK_ID: Final = "salespulse_settings"  # the view_submission listener matches it
OPEN_ACTION: Final = "open_settings"  # the App Home button
VALUE: Final = "value"  # every input's action_id
MAX_MODAL_BLOCKS: Final = 100
MAX_TITLE: Final = 24
DAY_NAMES: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
SEVERITIES: Final = (("off", "Off"), ("critical", "Critical: any hour, pages"),
                     ("warning", "Warning: business hours"), ("info", "Info: daily report only"))
CHANNELS: Final = ("sales", "alerts", "reports")

# block ids
TZ: Final = "tz"
HOURS_START, HOURS_END = "hours_start", "hours_end"
DAYS: Final = "days"
MORNING, EVENING = "report_morning", "report_evening"
QUIET_START, QUIET_END = "quiet_start", "quiet_end"
READERS, RESPONDERS = "readers", "responders"


def channel_block(logical: str) -> str:
    """The block id of a channel picker."""
    return f"channel_{logical}"


def severity_block(rule: str) -> str:
    """The block id of a rule's severity (or off) menu."""
    return f"rule_{rule}_severity"


def threshold_block(rule: str) -> str:
    """The block id of a rule's threshold."""
    return f"rule_{rule}_threshold"


@dataclass(frozen=True, slots=True)
class ChannelField:
    """A configured channel: its Slack id when known (the picker's initial value) and how to name it."""

    logical: str
    channel_id: str | None
    label: str


@dataclass(frozen=True, slots=True)
class RuleField:
    """One rule as the view shows it."""

    name: str
    title: str
    severity: str  # off | critical | warning | info
    threshold: float | None  # None: the rule has no threshold here (rhythm rules)
    unit: str = ""
    whole: bool = False
    low: float = 0  # the range the rule can judge with (bot/alerts/thresholds.py): Slack's input keeps to it too
    high: float | None = None


@dataclass(frozen=True, slots=True)
class SettingsForm:
    """What the view shows: the values in force."""

    channels: tuple[ChannelField, ...]
    timezone: str
    hours: tuple[str, str]  # HH:MM, HH:MM
    days: frozenset[int]  # Monday 0
    morning: str
    evening: str
    quiet: tuple[str, str] | None
    readers: tuple[str, ...]  # user ids
    responders: tuple[str, ...]  # user ids (user groups are kept, and listed in a hint)
    responder_groups: tuple[str, ...]
    rules: tuple[RuleField, ...]


def _text(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def _input(block_id: str, label: str, element: dict[str, Any], *, hint: str | None = None,
           optional: bool = False) -> Block:
    block: Block = {"type": "input", "block_id": block_id, "label": _text(truncate(label, 2000)),
                    "element": {**element, "action_id": VALUE}, "optional": optional}
    if hint:
        block["hint"] = _text(truncate(hint, 2000))
    return block


def _option(value: str, text: str) -> dict[str, Any]:
    return {"text": _text(text), "value": value}


def _time(block_id: str, label: str, initial: str | None, *, optional: bool = False, hint: str | None = None) -> Block:
    element: dict[str, Any] = {"type": "timepicker"}
    if initial:
        element["initial_time"] = initial
    return _input(block_id, label, element, optional=optional, hint=hint)


def _users(block_id: str, label: str, users: Sequence[str], hint: str) -> Block:
    element: dict[str, Any] = {"type": "multi_users_select", "placeholder": _text("Everyone")}
    if users:
        element["initial_users"] = list(users)
    return _input(block_id, label, element, optional=True, hint=hint)


def _channels(form: SettingsForm) -> list[Block]:
    blocks = [header("Channels")]
    for ch in form.channels:
        element: dict[str, Any] = {"type": "conversations_select",
                                   "filter": {"include": ["public", "private"], "exclude_bot_users": True}}
        if ch.channel_id:
            element["initial_conversation"] = ch.channel_id
        blocks.append(_input(channel_block(ch.logical), f"{ch.logical.capitalize()} channel", element,
                             optional=True, hint=f"Now {ch.label}. A private channel needs /invite @salespulse."))
    return blocks


def _time_blocks(form: SettingsForm) -> list[Block]:
    days = [_option(str(n), name) for n, name in enumerate(DAY_NAMES)]
    quiet = form.quiet or (None, None)
    day_element: dict[str, Any] = {"type": "checkboxes", "options": days}
    if form.days:
        day_element["initial_options"] = [days[n] for n in sorted(form.days)]
    return [
        header("Time"),
        _input(TZ, "Store time zone", {"type": "plain_text_input", "initial_value": form.timezone,
                                       "max_length": 64}, hint="An IANA name, such as Europe/Paris."),
        _time(HOURS_START, "Business hours open at", form.hours[0]),
        _time(HOURS_END, "Business hours close at", form.hours[1],
              hint="Warnings wait outside business hours; the no-sales rules count business time only."),
        _input(DAYS, "Business days", day_element, hint="The no-sales rules judge on these days only."),
        _time(MORNING, "Morning report at", form.morning),
        _time(EVENING, "Evening report at", form.evening),
        _time(QUIET_START, "Quiet hours from", quiet[0], optional=True),
        _time(QUIET_END, "Quiet hours until", quiet[1], optional=True,
              hint="Warnings wait; critical alerts still post, without @here. Leave both empty for none."),
    ]


def _people(form: SettingsForm) -> list[Block]:
    groups = ", ".join(form.responder_groups)
    kept = f" User groups from ALERT_RESPONDERS are kept ({groups})." if groups else ""
    return [
        header("People"),
        _users(READERS, "Who reads revenue", form.readers,
               "Nobody picked: everyone in the workspace (channel limits still apply)."),
        _users(RESPONDERS, "Who acts on alerts", form.responders,
               "Nobody picked: the revenue readers when picked, else everyone." + kept),
        context("Admins (SALESPULSE_ADMINS) are set in the environment only, so nobody can lock everyone out."),
    ]


def plain_number(number: float) -> str:
    """A threshold as typed: the shortest digits that read back as the same float, never an exponent (`:g` keeps
    six significant digits, so 1234567 became 1.23457e+06 and every save changed it)."""
    text = format(Decimal(repr(float(number))), "f")
    return text.removesuffix(".0")


def _rule(rule: RuleField) -> list[Block]:
    options = [_option(value, text) for value, text in SEVERITIES]
    initial = next((o for o in options if o["value"] == rule.severity), options[0])
    blocks = [_input(severity_block(rule.name), rule.title, {"type": "static_select", "options": options,
                                                            "initial_option": initial})]
    if rule.threshold is not None:
        def number(n: float) -> str:
            return plain_number(n) if not rule.whole else str(int(n))
        bounds = {"min_value": number(rule.low), **({"max_value": number(rule.high)} if rule.high is not None else {})}
        blocks.append(_input(threshold_block(rule.name), f"{rule.title}: threshold",
                             {"type": "number_input", "is_decimal_allowed": not rule.whole,
                              "initial_value": number(rule.threshold), **bounds}, hint=rule.unit))
    return blocks


def settings_view(form: SettingsForm, *, metadata: str = "") -> dict[str, Any]:
    """The `view` of views.open: the Settings modal with the values in force (and `metadata`, what Slack gives
    back on submission: bot.settings.opened)."""
    rules = [b for r in form.rules for b in _rule(r)]
    blocks = [*_channels(form), divider(), *_time_blocks(form), divider(), *_people(form), divider(),
              header("Alert rules"),
              context("Changes here win over ALERT_RULES_FILE and the environment, on every replica, at once."),
              *rules]
    return {"type": "modal", "callback_id": CALLBACK_ID, "title": _text("Settings"),
            "submit": _text("Save"), "close": _text("Cancel"), "blocks": blocks[:MAX_MODAL_BLOCKS],
            "private_metadata": metadata}


def denied_view() -> dict[str, Any]:
    """The modal someone who is not an admin sees instead (the App Home button has no other way to answer)."""
    return {"type": "modal", "title": _text("Settings"), "close": _text("OK"), "blocks": [denied_section()]}


def denied_section() -> Block:
    """Why the settings stay closed."""
    return section("🔒 Only the store's admins (SALESPULSE_ADMINS) can change salespulse settings. "
                   "Ask one of them.")


def denied_message() -> Message:
    """The ephemeral answer to `/sales settings` from someone who is not an admin."""
    return message("Only the store's admins (SALESPULSE_ADMINS) can change salespulse settings.",
                   [denied_section()])


def settings_not_opened(why: str) -> Message:
    """The ephemeral answer to `/sales settings` when Slack would not open the view (its trigger lasts 3 s)."""
    text = f"Couldn't open the Settings view (Slack said: {why}). Type /sales settings again."
    return message(text, [section("⚠️ " + escape_mrkdwn(truncate(text, 2900)))])


@dataclass(frozen=True, slots=True)
class ChangeLine:
    """One changed setting as people read it (`before` and `after` mrkdwn, its live mentions only for `people`);
    `people`: the members this change adds (after − before), whose mentions stay live in the notification's text,
    as the admin's does — the rest, kept or removed, are not pinged by a change that does nothing new to them."""

    label: str
    before: str
    after: str
    people: tuple[str, ...] = ()


def changes_message(user: str, lines: Sequence[ChangeLine]) -> Message:
    """Posted to the alerts channel: who changed what, before → after; the admin and the people added are live
    mentions (they learn what they may now do), the rest inert."""
    shown = [f"• {escape_mrkdwn(c.label)}: {c.before} → {c.after}" for c in lines[:40]]
    if len(lines) > 40:
        shown.append(f"…and {len(lines) - 40} more (see /health)")
    who = f"<@{user}>" if user[:1] in "UW" and user.isalnum() else escape_mrkdwn(user)
    summary = "; ".join(f"{c.label} {c.before} → {c.after}" for c in lines[:5])
    return message(f"Settings changed by {who}: {summary}",
                   [section(f"⚙️ *Settings changed by {who}*\n" + "\n".join(shown))],
                   users=(user, *(p for c in lines[:5] for p in c.people)))
