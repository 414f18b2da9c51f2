"""Settings: the contract's names, defaults, one clear line per bad value, secrets never shown."""

from __future__ import annotations

import datetime as dt

import pytest

from bot.config import SettingsError, load_settings
from bot.weekdays import format_days

ALL_VARS = ["DATABASE_URL", "SALESPULSE_DATA_DIR", "HOST", "PORT", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET",
            "SLACK_APP_TOKEN", "SLACK_API_URL", "SLACK_SALES_CHANNEL", "SLACK_ALERTS_CHANNEL",
            "SLACK_REPORTS_CHANNEL", "SLACK_SALES_WEBHOOK_URL", "SLACK_ALERT_WEBHOOK_URL",
            "STRIPE_WEBHOOK_SECRET", "STRIPE_API_KEY", "STRIPE_API_URL", "MONITORING_TOKEN", "INTAKE_TOKEN",
            "STORE_TIMEZONE", "BUSINESS_HOURS", "MORNING_REPORT_AT", "EVENING_REPORT_AT", "SITE_URL",
            "ALERT_CHECK_INTERVAL_SECONDS", "ALERT_RULES_FILE", "SLASH_COMMAND_ALLOWED_USERS",
            "SLASH_COMMAND_ALLOWED_CHANNELS", "BUSINESS_DAYS", "QUIET_HOURS", "ALERT_RESPONDERS", "SALESPULSE_ADMINS"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    """No stray variable or .env file from the machine leaks into these tests."""
    for name in ALL_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(str(tmp_path))


def test_defaults_are_the_contracts() -> None:
    """With nothing set: local mode, UTC, 09:00-21:00, reports at 09:00 and 18:00, port 3000."""
    s = load_settings()
    assert s.local_mode and s.host == "127.0.0.1" and s.port == 3000
    assert s.store_timezone == "UTC" and str(s.business_hours) == "09:00-21:00"
    assert (s.morning_report_at, s.evening_report_at) == (dt.time(9), dt.time(18))
    assert s.slack_sales_channel == "#sales-notifications" and s.alert_check_interval_seconds == 60
    assert s.slack_api_url == "https://slack.com/api/"


def test_values_are_parsed_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Comma lists, HH:MM windows, zones and URLs without a trailing slash are understood."""
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_a, whsec_b")
    monkeypatch.setenv("SLASH_COMMAND_ALLOWED_USERS", "U1,U2")
    monkeypatch.setenv("BUSINESS_HOURS", "08:30-22:00")
    monkeypatch.setenv("STORE_TIMEZONE", "America/New_York")
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:9999/api")
    s = load_settings()
    assert s.stripe_secrets() == ["whsec_a", "whsec_b"]
    assert s.slash_command_allowed_users == ("U1", "U2")
    assert s.business_hours.contains(dt.time(8, 30)) and not s.business_hours.contains(dt.time(22))
    assert s.tz.key == "America/New_York"
    assert s.slack_api_url == "http://127.0.0.1:9999/api/"


def test_business_days_and_quiet_hours(monkeypatch: pytest.MonkeyPatch) -> None:
    """BUSINESS_DAYS defaults to every day and reads ranges that wrap; QUIET_HOURS is off unless set; a typo is
    one clear line."""
    s = load_settings()
    assert s.business_days == frozenset(range(7)) and s.quiet_hours is None
    monkeypatch.setenv("BUSINESS_DAYS", "Sat-Mon, wed")
    monkeypatch.setenv("QUIET_HOURS", "22:00-07:00")
    s = load_settings()
    assert s.business_days == frozenset({5, 6, 0, 2}) and format_days(s.business_days) == "Mon,Wed,Sat-Sun"
    assert s.quiet_hours is not None and s.quiet_hours.contains(dt.time(3)) and not s.quiet_hours.contains(dt.time(8))
    monkeypatch.setenv("BUSINESS_DAYS", "Mon-Fry")
    with pytest.raises(SettingsError, match="invalid setting BUSINESS_DAYS: expected day names"):
        load_settings()


def test_dotenv_is_read_and_real_environment_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    """A .env file in the working directory is read; a real environment variable overrides it."""
    from pathlib import Path

    Path(str(tmp_path), ".env").write_text("STORE_TIMEZONE=Europe/Paris\nPORT=4000\n")
    monkeypatch.setenv("PORT", "5000")
    s = load_settings()
    assert (s.store_timezone, s.port) == ("Europe/Paris", 5000)


@pytest.mark.parametrize(("name", "value"), [
    ("STORE_TIMEZONE", "Mars/Olympus"), ("PORT", "eighty"), ("PORT", "70000"),
    ("BUSINESS_HOURS", "9 to 5"), ("MORNING_REPORT_AT", "25:00"), ("SLACK_API_URL", "ftp://x"),
    ("MORNING_REPORT_AT", "18:00"), ("EVENING_REPORT_AT", "08:30"),  # the evening report must come after
    ("ALERT_CHECK_INTERVAL_SECONDS", "0"), ("SITE_URL", "example.com"), ("SLACK_BOT_TOKEN", "xoxp-user"),
    ("STORE_CURRENCY", "dollars"), ("STORE_CURRENCY", "USE"),  # three letters, but no ISO 4217 currency
    ("DATABASE_URL", "mysql://u@h/db"), ("DATABASE_URL", "localhost:5432"), ("DATABASE_URL", "postgresql://h:pg/db"),
    ("SLASH_COMMAND_ALLOWED_CHANNELS", "#general"), ("SLASH_COMMAND_ALLOWED_USERS", "S0GROUP"),
    ("SALESPULSE_ADMINS", "U1,S0GROUP"), ("ALERT_RESPONDERS", "@oncall"), ("SLACK_SALES_WEBHOOK_URL", "ftp://x"),
    ("SLACK_ALERT_WEBHOOK_URL", "hooks.slack.com/services/T/B/x"), ("STRIPE_WEBHOOK_SECRET", "whsec_a,sk_test_b"),
])
def test_malformed_value_stops_with_one_line_naming_the_variable(
        monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    """Each malformed setting raises SettingsError whose single line names the variable."""
    monkeypatch.setenv(name, value)
    if name == "SLACK_BOT_TOKEN":
        monkeypatch.setenv("SLACK_SIGNING_SECRET", "s")
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert "\n" not in message
    assert name in message or "SLACK_BOT_TOKEN" in message


@pytest.mark.parametrize(("name", "value"), [
    ("DATABASE_URL", "postgres://u:p@h1:5432,h2:5433/db"), ("DATABASE_URL", "postgresql://postgres@/db?host=/run/pg"),
    ("DATABASE_URL", "postgresql://[::1]:5432/db"), ("SLASH_COMMAND_ALLOWED_CHANNELS", "C0SALES,G0PRIVATE,D0DM"),
    ("ALERT_RESPONDERS", "U1,W2,S0ONCALL"), ("SLACK_SALES_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/x"),
])
def test_well_formed_values_of_the_checked_settings_are_taken(monkeypatch: pytest.MonkeyPatch, name: str,
                                                              value: str) -> None:
    """Several hosts, a Unix socket, IPv6; channel ids of every kind; user groups where they are expanded."""
    monkeypatch.setenv(name, value)
    s = load_settings()
    got = getattr(s, name.lower())
    assert (got.get_secret_value() if hasattr(got, "get_secret_value") else ",".join(got)) == value


def test_bot_token_without_signing_secret_or_socket_mode_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP mode cannot verify Slack's requests without SLACK_SIGNING_SECRET."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    with pytest.raises(SettingsError, match="SLACK_SIGNING_SECRET"):
        load_settings()
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1")
    assert not load_settings().local_mode


def test_secrets_never_appear_in_repr_or_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tokens are SecretStr: repr, str and validation errors don't show them."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-supersecret")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "signing-supersecret")
    monkeypatch.setenv("MONITORING_TOKEN", "mon-supersecret-long-enough-token")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:dbsupersecret@h/db")
    s = load_settings()
    assert "supersecret" not in repr(s) and "supersecret" not in str(s)
    monkeypatch.setenv("SLACK_APP_TOKEN", "not-an-xapp-supersecret")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "supersecret" not in str(info.value)
    monkeypatch.delenv("SLACK_APP_TOKEN")
    for name, value in [("DATABASE_URL", "mysql://u:dbsupersecret@h/db"),
                        ("DATABASE_URL", "postgresql://u:dbsupersecret@h:x/db"),
                        ("SLACK_SALES_WEBHOOK_URL", "hooks.slack.com/services/T/B/supersecret"),
                        ("STRIPE_WEBHOOK_SECRET", "sk_live_supersecret")]:
        monkeypatch.setenv(name, value)
        with pytest.raises(SettingsError, match=name) as info:
            load_settings()
        assert "supersecret" not in str(info.value)
        monkeypatch.delenv(name)


@pytest.mark.parametrize(("value", "code"), [("usd", "USD"), (" eur ", "EUR"), ("JPY", "JPY"), ("chf", "CHF")])
def test_store_currency_takes_any_iso_code_in_any_case(monkeypatch: pytest.MonkeyPatch, value: str,
                                                       code: str) -> None:
    monkeypatch.setenv("STORE_CURRENCY", value)
    assert load_settings().store_currency == code


@pytest.mark.parametrize("name", ["BUSINESS_HOURS", "QUIET_HOURS"])
def test_an_hour_window_with_equal_ends_is_refused(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """09:00-09:00 is an empty window (never open: every warning held for ever), refused as the Settings view does."""
    monkeypatch.setenv(name, "09:00-09:00")
    with pytest.raises(SettingsError, match=f"invalid setting {name}: the end must differ from the start"):
        load_settings()


@pytest.mark.parametrize("name", ["SLACK_SALES_CHANNEL", "SLACK_ALERTS_CHANNEL", "SLACK_REPORTS_CHANNEL"])
def test_a_blank_channel_is_refused_and_spaces_around_one_go(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """A channel of spaces (or a tab) is refused like an empty one; "#sales " is read as "#sales"."""
    for blank in ("   ", "\t"):
        monkeypatch.setenv(name, blank)
        with pytest.raises(SettingsError, match=f"invalid setting {name}"):
            load_settings()
    monkeypatch.setenv(name, " #sales ")
    assert getattr(load_settings(), name.lower()) == "#sales"


@pytest.mark.parametrize("port", ["0", "65536", "99999", "99999999999999999999"])
def test_a_database_url_port_outside_1_to_65535_is_refused(monkeypatch: pytest.MonkeyPatch, port: str) -> None:
    """A port no socket can use is refused at start-up, in one line, before any connection (not an OverflowError)."""
    monkeypatch.setenv("DATABASE_URL", f"postgresql://u:dbsupersecret@db:{port}/sales")
    with pytest.raises(SettingsError, match="DATABASE_URL: a port in the URI is outside 1-65535") as info:
        load_settings()
    assert "supersecret" not in str(info.value)
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db1:1,db2:65535/sales")
    assert load_settings().database_url is not None


def test_a_blank_data_dir_means_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """`SALESPULSE_DATA_DIR=` is unset, like every other optional setting: ./.salespulse, not the working directory."""
    from pathlib import Path

    monkeypatch.setenv("SALESPULSE_DATA_DIR", " ")
    assert load_settings().salespulse_data_dir == Path(".salespulse")


def test_a_blank_host_listens_on_loopback_not_every_interface(monkeypatch: pytest.MonkeyPatch) -> None:
    """HOST= (a blank line in .env) is the default 127.0.0.1: aiohttp reads an empty host as 0.0.0.0 and ::."""
    monkeypatch.setenv("HOST", " ")
    assert load_settings().host == "127.0.0.1"


@pytest.mark.parametrize(("zone", "city"), [("CET", "Europe/Paris"), ("EET", "Europe/Athens"), ("MET", "Europe/Paris"),
                                            ("WET", "Europe/Lisbon")])
def test_a_zone_postgresql_reads_as_an_abbreviation_is_refused(monkeypatch: pytest.MonkeyPatch, zone: str,
                                                               city: str) -> None:
    """PostgreSQL reads STORE_TIMEZONE=CET as +01:00 all year while Python applies CEST: refused, naming a city zone."""
    monkeypatch.setenv("STORE_TIMEZONE", zone)
    with pytest.raises(SettingsError, match=f"invalid setting STORE_TIMEZONE: .*{zone}.*city zone such as {city}"):
        load_settings()
    for fine in ("Europe/Paris", "UTC", "GMT", "EST5EDT", "EST", "HST"):  # EST, HST: fixed offsets on both sides
        monkeypatch.setenv("STORE_TIMEZONE", fine)
        assert load_settings().store_timezone == fine
