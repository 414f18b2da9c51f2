"""ALERT_RULES_FILE: the TOML that overrides the default rules' thresholds, validated by pydantic models.

Strict and closed: a mistyped key or a threshold of the wrong type is an error naming it
(`rules.payment_failures_critical.threshold: Input should be a valid integer`), not a silently ignored
line — an alert that never fires because of a typo is found out during an outage.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.alerts.rules import DEFAULT_RULES, Rule, RuleSet
from bot.alerts.thresholds import bounded
from bot.rhythm.model import DEFAULT_PARAMS, RhythmParams


class _Strict(BaseModel):
    # strict: TOML has real types, so "5" for 5 or true for 1 is a mistake to report, not to coerce.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Override(_Strict):
    """What any [rules.<name>] table may set besides its threshold."""

    window_minutes: float | None = Field(None, gt=0)
    keep_firing_for_minutes: float | None = Field(None, ge=0)
    enabled: bool | None = None
    only_without_rhythm: bool | None = None  # false keeps a fixed rule on once the store has a rhythm


class CountOverride(Override):
    """A rule whose threshold counts things (failures, probes, events): a whole number."""

    threshold: int | None = Field(None, ge=0)


class MeasureOverride(Override):
    """A rule whose threshold is a measure (hours, seconds): any number."""

    threshold: float | None = Field(None, ge=0)


class RateOverride(MeasureOverride):
    """A rule over a rate (a fraction), which also needs a minimum number of attempts to judge on."""

    min_attempts: int | None = Field(None, ge=0)


class FailureRateOverride(RateOverride):
    """The payment failure rate, which also needs a minimum number of failures."""

    min_failures: int | None = Field(None, ge=0)


class StoppedOverride(_Strict):
    """[rules.sales_stopped]: bot.rhythm.judge.StoppedParams."""

    enabled: bool | None = None
    keep_firing_for_minutes: float | None = Field(None, ge=0)
    alpha: float | None = Field(None, gt=0, lt=1)
    false_alarms_per_30_days: float | None = Field(None, gt=0)
    min_per_hour: float | None = Field(None, ge=0)
    min_share_of_peak: float | None = Field(None, ge=0, le=1)


class LowTodayOverride(_Strict):
    """[rules.sales_low_today]: bot.rhythm.judge.LowTodayParams."""

    enabled: bool | None = None
    keep_firing_for_minutes: float | None = Field(None, ge=0)
    alpha: float | None = Field(None, gt=0, lt=1)
    min_expected: float | None = Field(None, ge=0)
    max_share: float | None = Field(None, gt=0, le=1)


class RhythmTable(_Strict):
    """[rhythm]: bot.rhythm.model.RhythmParams, the history the expected rates come from."""

    weeks: int = Field(default=DEFAULT_PARAMS.weeks, ge=1, le=52)
    min_weeks: int = Field(default=DEFAULT_PARAMS.min_weeks, ge=1, le=52)
    spread: float = Field(default=DEFAULT_PARAMS.spread, gt=0)


class RulesTable(_Strict):
    """The [rules] table: one optional table per default rule (tests check these match DEFAULT_RULES)."""

    site_down: CountOverride | None = None
    payment_failures_critical: CountOverride | None = None
    no_sales: MeasureOverride | None = None
    sales_stopped: StoppedOverride | None = None
    site_slow: MeasureOverride | None = None
    payment_failures_warning: CountOverride | None = None
    payment_failure_rate: FailureRateOverride | None = None
    sales_low_today: LowTodayOverride | None = None
    sync_failures: CountOverride | None = None
    webhook_errors: RateOverride | None = None
    webhook_silence: CountOverride | None = None
    delivery_stuck: MeasureOverride | None = None
    dispute_opened: CountOverride | None = None
    no_order_1h: MeasureOverride | None = None


class RulesFile(_Strict):
    """The whole file."""

    repeat_interval_hours: float = Field(4, gt=0)
    oncall_mention: str = "<!here>"  # e.g. "<!subteam^S0123ABC>" for a user group
    rules: RulesTable = RulesTable()
    rhythm: RhythmTable = RhythmTable()


class RulesFileError(ValueError):
    """ALERT_RULES_FILE cannot be used; the message (one line) names the file and every problem."""


def describe(exc: ValidationError) -> str:
    """Pydantic's errors on one line, each at its dotted TOML path: `rules.site_down.threshold: …`."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"])
        got = "" if err["type"] == "extra_forbidden" else f", got {err['input']!r}"
        parts.append(f"{where}: {err['msg']}{got}")
    return "; ".join(parts)


def _apply(rule: Rule, override: _Strict, source: str) -> Rule:
    """The rule with what the file set (and only that) changed; a threshold outside its rule's range (a file
    written before the ranges existed) is kept inside it, with a warning, rather than stopping the bot."""
    given = override.model_dump(exclude_none=True)
    if rule.params is not None:  # a rhythm rule: its parameters are a frozen dataclass of their own
        names = {f.name for f in fields(rule.params)}
        params = replace(rule.params, **{k: v for k, v in given.items() if k in names})
        return replace(rule, params=params, enabled=given.get("enabled", rule.enabled),
                       keep_firing_for=_keep(given, rule))
    changes: dict[str, Any] = {"keep_firing_for": _keep(given, rule)}
    if (threshold := getattr(override, "threshold", None)) is not None:
        changes["threshold"] = bounded(rule.name, float(threshold), source=source)
    if "window_minutes" in given:
        changes["window"] = dt.timedelta(minutes=given["window_minutes"])
    renamed = {"enabled": "enabled", "min_attempts": "min_attempts", "min_failures": "min_count",
               "only_without_rhythm": "only_without_rhythm"}
    changes |= {field: given[key] for key, field in renamed.items() if key in given}
    return replace(rule, **changes)


def _keep(given: dict[str, Any], rule: Rule) -> dt.timedelta:
    """keep_firing_for_minutes as a duration, else the rule's own."""
    minutes = given.get("keep_firing_for_minutes")
    return rule.keep_firing_for if minutes is None else dt.timedelta(minutes=minutes)


def load_rules(path: Path | None) -> RuleSet:
    """The default rules with the thresholds a TOML file overrides (see README, "Alert rules")."""
    if path is None:
        return RuleSet()
    try:
        parsed = RulesFile.model_validate(tomllib.loads(path.read_text("utf-8")))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RulesFileError(f"ALERT_RULES_FILE {path}: {exc}") from None
    except ValidationError as exc:
        raise RulesFileError(f"ALERT_RULES_FILE {path}: {describe(exc)}") from None
    source = f"ALERT_RULES_FILE {path}"
    rules = tuple(_apply(r, override, source) if (override := getattr(parsed.rules, r.name)) is not None else r
                  for r in DEFAULT_RULES)
    rhythm = RhythmParams(**parsed.rhythm.model_dump())
    return RuleSet(rules, dt.timedelta(hours=parsed.repeat_interval_hours), parsed.oncall_mention, rhythm)
