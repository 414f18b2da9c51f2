"""ALERT_RULES_FILE: a good file overrides the defaults; a wrong type or an unknown key is one line naming it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bot.alerts.rules import DEFAULT_RULES
from bot.alerts.rules_file import RulesFileError, RulesTable, load_rules
from bot.cli.main import main
from bot.rhythm.judge import LowTodayParams, StoppedParams

README_EXAMPLE = """
repeat_interval_hours = 4
oncall_mention = "<!subteam^S0123ABC>"   # instead of <!here> for criticals

[rules.payment_failures_warning]
threshold = 5
window_minutes = 15

[rules.site_slow]
enabled = false

[rules.payment_failure_rate]
threshold = 0.2
min_attempts = 20
"""


def rules_file(tmp_path: Path, text: str) -> Path:
    """Write `text` as a rules file; its path."""
    path = tmp_path / "alert-rules.toml"
    path.write_text(text, "utf-8")
    return path


def error_of(path: Path) -> str:
    """The RulesFileError message loading `path` raises."""
    with pytest.raises(RulesFileError) as caught:
        load_rules(path)
    return str(caught.value)


def test_every_default_rule_has_a_table_in_the_file_format() -> None:
    """The [rules] model names exactly the default rules, so each one can be overridden and no other."""
    assert set(RulesTable.model_fields) == {r.name for r in DEFAULT_RULES}


def test_a_good_file_overrides_only_what_it_sets(tmp_path: Path) -> None:
    """The README's example: thresholds, windows, enabled and min_attempts change; the rest keeps its default."""
    rules = load_rules(rules_file(tmp_path, README_EXAMPLE))
    by_name = {r.name: r for r in rules.rules}
    defaults = {r.name: r for r in DEFAULT_RULES}
    assert rules.mention == "<!subteam^S0123ABC>" and rules.repeat_interval == dt.timedelta(hours=4)
    warning = by_name["payment_failures_warning"]
    assert (warning.threshold, warning.window) == (5.0, dt.timedelta(minutes=15))
    assert by_name["site_slow"].enabled is False
    rate = by_name["payment_failure_rate"]
    assert (rate.threshold, rate.min_attempts, rate.window) == (0.2, 20, defaults["payment_failure_rate"].window)
    assert [r.name for r in rules.rules] == [r.name for r in DEFAULT_RULES]
    untouched = {n for n in by_name if n not in ("payment_failures_warning", "site_slow", "payment_failure_rate")}
    assert all(by_name[n] == defaults[n] for n in untouched)


def test_no_file_means_the_defaults() -> None:
    """Without ALERT_RULES_FILE the default rules are in force."""
    assert load_rules(None).rules == DEFAULT_RULES


def test_a_wrong_type_is_named_with_its_path(tmp_path: Path) -> None:
    """A count threshold given as a fraction is rejected, at its dotted path, with what was given."""
    path = rules_file(tmp_path, "[rules.payment_failures_critical]\nthreshold = 2.5\n")
    assert error_of(path) == (f"ALERT_RULES_FILE {path}: rules.payment_failures_critical.threshold:"
                              " Input should be a valid integer, got 2.5")


@pytest.mark.parametrize(("text", "named"), [
    ('[rules.site_slow]\nthreshold = "3"\n', "rules.site_slow.threshold: Input should be a valid number"),
    ("[rules.site_slow]\nenabled = 1\n", "rules.site_slow.enabled: Input should be a valid boolean"),
    ("repeat_interval_hours = 0\n", "repeat_interval_hours: Input should be greater than 0"),
    ("[rules.sync_failures]\nthreshold = -1\n", "rules.sync_failures.threshold: Input should be greater than"),
    ("oncall_mention = 5\n", "oncall_mention: Input should be a valid string"),
])
def test_strict_types_and_ranges(tmp_path: Path, text: str, named: str) -> None:
    """No coercion: a string for a number, 1 for true, a zero interval or a negative threshold is an error."""
    assert named in error_of(rules_file(tmp_path, text))


@pytest.mark.parametrize(("text", "named"), [
    ("[rules.payment_failures_warning]\nthreshhold = 5\n",
     "rules.payment_failures_warning.threshhold: Extra inputs are not permitted"),
    ("[rules.payment_failure_warning]\nthreshold = 5\n",
     "rules.payment_failure_warning: Extra inputs are not permitted"),
    ("[rules.site_down]\nmin_attempts = 3\n", "rules.site_down.min_attempts: Extra inputs are not permitted"),
    ("repeat_interval = 4\n", "repeat_interval: Extra inputs are not permitted"),
])
def test_an_unknown_key_is_named(tmp_path: Path, text: str, named: str) -> None:
    """A misspelt key, an unknown rule, a setting the rule does not have, an unknown top-level key."""
    message = error_of(rules_file(tmp_path, text))
    assert named in message and "\n" not in message


def test_invalid_toml_is_an_error_naming_the_file(tmp_path: Path) -> None:
    """A syntax error is reported with the file's path, as TOML's parser words it."""
    path = rules_file(tmp_path, "[rules.site_down\n")
    assert error_of(path).startswith(f"ALERT_RULES_FILE {path}: ")


def test_check_prints_the_one_line_and_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """`salespulse check` with a bad rules file: one line on stderr naming the key, exit status 1."""
    monkeypatch.chdir(tmp_path)
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    path = rules_file(tmp_path, "[rules.payment_failures_critical]\nthreshold = 2.5\n")
    monkeypatch.setenv("ALERT_RULES_FILE", str(path))
    assert main(["check"]) == 1
    err = capsys.readouterr().err
    assert err == (f"salespulse: ALERT_RULES_FILE {path}: rules.payment_failures_critical.threshold:"
                   " Input should be a valid integer, got 2.5\n")


def test_rhythm_rules_and_history_are_set_from_the_file(tmp_path: Path) -> None:
    """[rules.sales_stopped] and [rules.sales_low_today] set their parameters, [rhythm] the history; a fixed rule
    can stay on with a rhythm and the failure rate takes a minimum count."""
    text = ("[rhythm]\nweeks = 6\n[rules.sales_stopped]\nalpha = 0.0005\nmin_per_hour = 1\n"
            "[rules.sales_low_today]\nenabled = false\nmax_share = 0.4\n"
            "[rules.no_sales]\nonly_without_rhythm = false\n[rules.payment_failure_rate]\nmin_failures = 7\n")
    rules = load_rules(rules_file(tmp_path, text))
    by_name = {r.name: r for r in rules.rules}
    assert rules.rhythm.weeks == 6 and rules.rhythm.min_weeks == 2
    assert by_name["sales_stopped"].params == StoppedParams(alpha=0.0005, min_per_hour=1.0)
    assert by_name["sales_low_today"].params == LowTodayParams(max_share=0.4)
    assert not by_name["sales_low_today"].enabled
    assert not by_name["no_sales"].only_without_rhythm and by_name["payment_failure_rate"].min_count == 7
    assert "rules.sales_stopped.alpha" in error_of(rules_file(tmp_path, "[rules.sales_stopped]\nalpha = 2.0\n"))
