"""ALERT_RULES_FILE: the TOML that overrides the default rules' thresholds, validated by pydantic models.

Strict and closed: a mistyped key or a threshold of the wrong type is an error naming it
(`rules.payment_failures_critical.threshold: Input should be a valid integer`), not a silently ignored
line — an alert that never fires because of a typo is found out during an outage.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.alerts.rules import DEFAULT_RULES, Rule, RuleSet


class _Strict(BaseModel):
    # strict: TOML has real types, so "5" for 5 or true for 1 is a mistake to report, not to coerce.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Override(_Strict):
    """What any [rules.<name>] table may set besides its threshold."""

    window_minutes: float | None = Field(None, gt=0)
    enabled: bool | None = None


class CountOverride(Override):
    """A rule whose threshold counts things (failures, probes, events): a whole number."""

    threshold: int | None = Field(None, ge=0)


class MeasureOverride(Override):
    """A rule whose threshold is a measure (hours, seconds): any number."""

    threshold: float | None = Field(None, ge=0)


class RateOverride(MeasureOverride):
    """A rule over a rate (a fraction), which also needs a minimum number of attempts to judge on."""

    min_attempts: int | None = Field(None, ge=0)


class RulesTable(_Strict):
    """The [rules] table: one optional table per default rule (tests check these match DEFAULT_RULES)."""

    site_down: CountOverride | None = None
    payment_failures_critical: CountOverride | None = None
    no_sales: MeasureOverride | None = None
    site_slow: MeasureOverride | None = None
    payment_failures_warning: CountOverride | None = None
    payment_failure_rate: RateOverride | None = None
    sync_failures: CountOverride | None = None
    webhook_errors: RateOverride | None = None
    webhook_silence: CountOverride | None = None
    dispute_opened: CountOverride | None = None
    no_order_1h: MeasureOverride | None = None


class RulesFile(_Strict):
    """The whole file."""

    repeat_interval_hours: float = Field(4, gt=0)
    oncall_mention: str = "<!here>"  # e.g. "<!subteam^S0123ABC>" for a user group
    rules: RulesTable = RulesTable()


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


def _apply(rule: Rule, override: Override) -> Rule:
    """The rule with what the file set (and only that) changed."""
    changes: dict[str, Any] = {}
    if (threshold := getattr(override, "threshold", None)) is not None:
        changes["threshold"] = float(threshold)
    if override.window_minutes is not None:
        changes["window"] = dt.timedelta(minutes=override.window_minutes)
    if override.enabled is not None:
        changes["enabled"] = override.enabled
    if (min_attempts := getattr(override, "min_attempts", None)) is not None:
        changes["min_attempts"] = min_attempts
    return replace(rule, **changes)


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
    rules = tuple(_apply(r, override) if (override := getattr(parsed.rules, r.name)) is not None else r
                  for r in DEFAULT_RULES)
    return RuleSet(rules, dt.timedelta(hours=parsed.repeat_interval_hours), parsed.oncall_mention)
