"""What the Settings view can change, in the form it is stored (JSON) and audited, and how stored values apply
over the environment's Settings and the rules file's RuleSet."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from bot.alerts.rules import Rule, RuleSet, Severity
from bot.alerts.thresholds import THRESHOLDS as THRESHOLDS  # the Settings view reads them from here
from bot.alerts.thresholds import bounded
from bot.config import HourWindow, Settings, parse_hhmm, parse_window
from bot.config_values import check_not_abbreviation
from bot.weekdays import format_days, parse_days

log = logging.getLogger(__name__)

# A rule's stored key: rule:<name> → the parts changed from Slack of {"enabled", "severity", "threshold"}.
RULE_PREFIX: Final = "rule:"


def zone(value: Any) -> str:
    """An IANA time zone name, checked against the zone database: one of its zones, not just a file ZoneInfo can
    open ("localtime", "posixrules" are this host's, and another replica may read them otherwise or not at all),
    and not one PostgreSQL reads as an abbreviation (CET: see ABBREVIATION_ZONES)."""
    name = str(value).strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        name = ""
    if name not in _zones():
        raise ValueError(f"unknown time zone {str(value).strip()[:60]!r}: use an IANA name such as Europe/Paris")
    check_not_abbreviation(name)
    return name


@functools.cache
def _zones() -> frozenset[str]:
    # Some systems' zone directories hold these files as well: the host's own zone and the POSIX default rules.
    return frozenset(available_timezones()) - {"localtime", "posixrules"}


def _window_or_none(value: Any) -> HourWindow | None:
    return parse_window(str(value)) if str(value).strip() else None


def _channel(value: Any) -> str:
    text = str(value).strip()
    if not text:
        raise ValueError("a channel is needed")
    return text


def _users(value: Any) -> tuple[str, ...]:
    ids = tuple(str(v) for v in value) if isinstance(value, list | tuple) else ()
    if any(not (i.isascii() and i.isalnum() and i[:1] in "UWS") for i in ids):
        raise ValueError(f"not Slack user ids: {ids!r}"[:120])
    return ids


@dataclass(frozen=True, slots=True)
class Changeable:
    """One setting the view changes: the variable it overrides, its Settings attribute, and its stored form."""

    key: str  # the environment variable whose value it replaces
    attr: str
    label: str
    load: Callable[[Any], Any]  # stored JSON → the attribute's value (ValueError: unusable)
    dump: Callable[[Any], Any]  # the attribute's value → stored JSON (what the audit and /health show)


CHANGEABLE: Final = (
    Changeable("SLACK_SALES_CHANNEL", "slack_sales_channel", "sales channel", _channel, str),
    Changeable("SLACK_ALERTS_CHANNEL", "slack_alerts_channel", "alerts channel", _channel, str),
    Changeable("SLACK_REPORTS_CHANNEL", "slack_reports_channel", "reports channel", _channel, str),
    Changeable("STORE_TIMEZONE", "store_timezone", "time zone", zone, str),
    Changeable("BUSINESS_HOURS", "business_hours", "business hours", lambda v: parse_window(str(v)), str),
    Changeable("BUSINESS_DAYS", "business_days", "business days", lambda v: parse_days(str(v)), format_days),
    Changeable("MORNING_REPORT_AT", "morning_report_at", "morning report", lambda v: parse_hhmm(str(v)),
               lambda t: f"{t:%H:%M}"),
    Changeable("EVENING_REPORT_AT", "evening_report_at", "evening report", lambda v: parse_hhmm(str(v)),
               lambda t: f"{t:%H:%M}"),
    Changeable("QUIET_HOURS", "quiet_hours", "quiet hours", _window_or_none, lambda w: str(w) if w else ""),
    Changeable("SLASH_COMMAND_ALLOWED_USERS", "slash_command_allowed_users", "revenue readers", _users, list),
    Changeable("ALERT_RESPONDERS", "alert_responders", "alert responders", _users, list),
)
BY_KEY: Final = {c.key: c for c in CHANGEABLE}


def rule_state(rule: Rule) -> dict[str, Any]:
    """A rule's changeable part in its stored form."""
    state: dict[str, Any] = {"enabled": rule.enabled, "severity": rule.severity.value}
    if rule.name in THRESHOLDS:
        state["threshold"] = rule.threshold
    return state


def rule_to_store(after: Mapping[str, Any], default: Mapping[str, Any]) -> dict[str, Any] | None:
    """What to store of a rule's state saved from the view: only the parts that differ from the rule as the rules
    file (or the built-in default) has it, so the others keep following ALERT_RULES_FILE; None when none does."""
    return {k: v for k, v in after.items() if default.get(k) != v} or None


def _apply_rule(rule: Rule, stored: Any) -> Rule:
    if not isinstance(stored, Mapping):
        return rule
    try:
        changes: dict[str, Any] = {"enabled": bool(stored.get("enabled", rule.enabled)),
                                   "severity": Severity(stored.get("severity", rule.severity.value))}
        if rule.name in THRESHOLDS and isinstance(stored.get("threshold"), int | float):
            changes["threshold"] = bounded(rule.name, float(stored["threshold"]), source="stored settings")
    except ValueError as exc:
        log.warning("ignoring the stored setting of rule %s: %s", rule.name, exc)
        return rule
    return dataclasses.replace(rule, **changes)


def report_times(env: Settings, stored: Mapping[str, Any]) -> tuple[dt.time, dt.time]:
    """The (morning, evening) report times these stored values give over the environment, before `effective`
    checks their order (a stored one that does not load: the environment's)."""
    def one(item: Changeable) -> dt.time:
        try:
            return cast(dt.time, item.load(stored[item.key]))
        except (KeyError, ValueError, TypeError):  # not stored, or unusable
            return cast(dt.time, getattr(env, item.attr))
    return one(BY_KEY["MORNING_REPORT_AT"]), one(BY_KEY["EVENING_REPORT_AT"])


def effective(env: Settings, rules: RuleSet, stored: Mapping[str, Any]) -> tuple[Settings, RuleSet]:
    """The environment's Settings and the rules file's RuleSet with the stored values applied over them.

    A stored value that no longer loads (a zone gone from the zone database) is skipped with a warning: the
    default stands rather than the bot stopping."""
    updates: dict[str, Any] = {}
    for item in CHANGEABLE:
        if item.key in stored:
            try:
                updates[item.attr] = item.load(stored[item.key])
            except (ValueError, TypeError) as exc:
                log.warning("ignoring the stored setting %s: %s", item.key, exc)
    morning, evening = (updates.get(a, getattr(env, a)) for a in ("morning_report_at", "evening_report_at"))
    if morning >= evening:  # saved before the rule, or by two admins a field each: the environment's pair stands
        log.warning("ignoring the stored report times: the morning one (%s) is not before the evening one (%s)",
                    f"{morning:%H:%M}", f"{evening:%H:%M}")
        updates = {k: v for k, v in updates.items() if k not in ("morning_report_at", "evening_report_at")}
    ruled = tuple(_apply_rule(r, stored.get(RULE_PREFIX + r.name)) for r in rules.rules)
    # Nothing stored: the environment's own objects, unchanged.
    settings = env.model_copy(update=updates) if updates else env
    return settings, rules if ruled == rules.rules else dataclasses.replace(rules, rules=ruled)


def current(settings: Settings, rules: RuleSet) -> dict[str, Any]:
    """Every changeable value in force, in stored form, by key."""
    values = {item.key: item.dump(getattr(settings, item.attr)) for item in CHANGEABLE}
    return values | {RULE_PREFIX + r.name: rule_state(r) for r in rules.rules}
