"""The Settings view's values: the form filled with what is in force, and a submission read back into stored
values — or into one message per field that is wrong, which Slack shows on the field (`response_action: errors`)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.alerts.rules import Rule, RuleSet
from bot.blocks import settings as view
from bot.blocks.settings import ChannelField, RuleField, SettingsForm
from bot.config import Settings, parse_hhmm
from bot.delivery.channels import ChannelDirectory
from bot.settings.values import BY_KEY, RULE_PREFIX, THRESHOLDS, zone
from bot.weekdays import format_days

SETTING_OF_CHANNEL = {"sales": "SLACK_SALES_CHANNEL", "alerts": "SLACK_ALERTS_CHANNEL",
                      "reports": "SLACK_REPORTS_CHANNEL"}


def _is_user(ident: str) -> bool:
    return ident[:1] in ("U", "W")


def _channel_field(logical: str, configured: str, directory: ChannelDirectory | None) -> ChannelField:
    status = directory.find(logical) if directory is not None else None
    known = status.channel_id if status is not None else None
    channel_id = known or (configured if configured[:1] in ("C", "G") and configured.isalnum() else None)
    return ChannelField(logical, channel_id, status.label if status is not None else configured)


def form_of(settings: Settings, rules: RuleSet, directory: ChannelDirectory | None) -> SettingsForm:
    """The view's fields, filled with the values in force."""
    configured = {"sales": settings.slack_sales_channel, "alerts": settings.slack_alerts_channel,
                  "reports": settings.slack_reports_channel}
    quiet = settings.quiet_hours
    return SettingsForm(
        channels=tuple(_channel_field(k, v, directory) for k, v in configured.items()),
        timezone=settings.store_timezone,
        hours=(f"{settings.business_hours.start:%H:%M}", f"{settings.business_hours.end:%H:%M}"),
        days=settings.business_days, morning=f"{settings.morning_report_at:%H:%M}",
        evening=f"{settings.evening_report_at:%H:%M}",
        quiet=(f"{quiet.start:%H:%M}", f"{quiet.end:%H:%M}") if quiet is not None else None,
        readers=tuple(u for u in settings.slash_command_allowed_users if _is_user(u)),
        responders=tuple(u for u in settings.alert_responders if _is_user(u)),
        responder_groups=tuple(u for u in settings.alert_responders if not _is_user(u)),
        rules=tuple(_rule_field(r) for r in rules.rules))


def _rule_field(r: Rule) -> RuleField:
    """A rule as the view shows it: its threshold, unit and range where it has one in THRESHOLDS."""
    severity = r.severity.value if r.enabled else "off"
    if (limits := THRESHOLDS.get(r.name)) is None:
        return RuleField(r.name, r.title, severity, None)
    return RuleField(r.name, r.title, severity, r.threshold, limits.unit, limits.whole, limits.low, limits.high)


@dataclass
class Submission:
    """What a submitted view asks for: stored values by key, or the errors to show on fields."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _entry(state: Mapping[str, Any], block_id: str) -> Mapping[str, Any]:
    """A block's submitted element state; {} for anything malformed (read as "left empty", then refused)."""
    block = state.get(block_id)
    entry = block.get(view.VALUE) if isinstance(block, Mapping) else None
    return entry if isinstance(entry, Mapping) else {}


def _items(entry: Mapping[str, Any], key: str) -> list[Any]:
    """A list the element submits (selected options or users); [] when it is not one."""
    value = entry.get(key)
    return list(value) if isinstance(value, list) else []


def _time(state: Mapping[str, Any], block_id: str, out: Submission) -> dt.time | None:
    raw = _entry(state, block_id).get("selected_time")
    if raw in (None, ""):
        return None
    try:
        return parse_hhmm(str(raw))
    except ValueError:
        out.errors[block_id] = "Pick a time (HH:MM, 00:00 to 23:59)."
        return None


def _read_times(state: Mapping[str, Any], out: Submission) -> None:
    start, end = _time(state, view.HOURS_START, out), _time(state, view.HOURS_END, out)
    for block_id, t in ((view.HOURS_START, start), (view.HOURS_END, end)):
        if t is None and block_id not in out.errors:
            out.errors[block_id] = "Business hours need an opening and a closing time."
    if start is not None and end is not None:
        if start == end:
            out.errors[view.HOURS_END] = "Closing time must differ from opening time."
        else:
            out.values["BUSINESS_HOURS"] = f"{start:%H:%M}-{end:%H:%M}"
    for block_id, key in ((view.MORNING, "MORNING_REPORT_AT"), (view.EVENING, "EVENING_REPORT_AT")):
        t = _time(state, block_id, out)
        if t is not None:
            out.values[key] = f"{t:%H:%M}"
        elif block_id not in out.errors:
            out.errors[block_id] = "Pick the report's time."
    # The morning report covers the night since the evening one, the evening report the day so far.
    if out.values.get("MORNING_REPORT_AT", "") >= out.values.get("EVENING_REPORT_AT", "99:99"):
        out.errors[view.EVENING] = "The evening report must come after the morning report."
    q_start, q_end = _time(state, view.QUIET_START, out), _time(state, view.QUIET_END, out)
    if (q_start is None) != (q_end is None):
        missing = view.QUIET_END if q_end is None else view.QUIET_START
        out.errors.setdefault(missing, "Quiet hours need both a start and an end (or neither).")
    elif q_start is not None and q_end is not None:
        if q_start == q_end:
            out.errors[view.QUIET_END] = "The end must differ from the start."
        else:
            out.values["QUIET_HOURS"] = f"{q_start:%H:%M}-{q_end:%H:%M}"
    elif view.QUIET_START not in out.errors and view.QUIET_END not in out.errors:
        out.values["QUIET_HOURS"] = ""


def _read_general(state: Mapping[str, Any], out: Submission, current: Settings,
                  directory: ChannelDirectory | None) -> None:
    for logical, key in SETTING_OF_CHANNEL.items():
        picked = _entry(state, view.channel_block(logical)).get("selected_conversation")
        in_force = _channel_field(logical, getattr(current, BY_KEY[key].attr), directory).channel_id
        # Empty (it may be a name the picker cannot show) or the same channel by its id: keep what is in force.
        if picked and picked != in_force:
            out.values[key] = str(picked)
    try:
        out.values["STORE_TIMEZONE"] = zone(_entry(state, view.TZ).get("value") or "")
    except ValueError as exc:
        out.errors[view.TZ] = str(exc)[:150]
    days = {str(o.get("value")) for o in _items(_entry(state, view.DAYS), "selected_options")
            if isinstance(o, Mapping)}
    if not days or not days <= {str(n) for n in range(7)}:
        out.errors[view.DAYS] = "Pick at least one business day."
    else:
        out.values["BUSINESS_DAYS"] = format_days(frozenset(int(d) for d in days))
    for block_id, key in ((view.READERS, "SLASH_COMMAND_ALLOWED_USERS"), (view.RESPONDERS, "ALERT_RESPONDERS")):
        users = [str(u) for u in _items(_entry(state, block_id), "selected_users")]
        if any(not (_is_user(u) and u.isalnum() and u.isascii()) for u in users):
            out.errors[block_id] = "Pick people from the workspace."
            continue
        if key == "ALERT_RESPONDERS":  # user groups cannot be picked here: the configured ones stay
            users += [g for g in current.alert_responders if not _is_user(g)]
        out.values[key] = users


def _read_rules(state: Mapping[str, Any], out: Submission, rules: RuleSet) -> None:
    for rule in rules.rules:
        option = _entry(state, view.severity_block(rule.name)).get("selected_option")
        chosen = option.get("value") if isinstance(option, Mapping) else None
        if chosen not in {value for value, _ in view.SEVERITIES}:
            out.errors[view.severity_block(rule.name)] = "Pick a severity, or Off."
            continue
        stored: dict[str, Any] = {"enabled": chosen != "off",
                                  "severity": rule.severity.value if chosen == "off" else chosen}
        unit = THRESHOLDS.get(rule.name)
        if unit is not None:
            block_id = view.threshold_block(rule.name)
            raw = str(_entry(state, block_id).get("value") or "").strip()
            try:
                number = float(raw)
            except ValueError:
                number = math.nan
            # Checked here whatever the input's own bounds say: a submission may come from anything.
            if not unit.contains(number) or (unit.whole and not number.is_integer()):
                out.errors[block_id] = f"{rule.title}: enter {unit.range_text()} ({unit.unit})."[:150]
                continue
            stored["threshold"] = number
        out.values[RULE_PREFIX + rule.name] = stored


def read_submission(state: Mapping[str, Any], *, settings: Settings, rules: RuleSet,
                    directory: ChannelDirectory | None) -> Submission:
    """The submitted view's `state.values` as stored values, or the errors on the fields that are wrong."""
    out = Submission()
    _read_general(state, out, settings, directory)
    _read_times(state, out)
    _read_rules(state, out, rules)
    return out
