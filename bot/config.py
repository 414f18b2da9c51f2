"""Settings: the only place the environment (and `.env`) is read. Names are the contract's."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

from babel.numbers import is_currency
from pydantic import Field, SecretStr, StringConstraints, ValidationError, field_validator, model_validator
from pydantic_core.core_schema import ValidationInfo
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.config_tokens import IntakeToken, MonitoringToken
from bot.config_values import HourWindow, check_postgres_uri, check_zone, parse_hhmm, parse_window, slack_ids
from bot.subscriptions.renewals import Renewals
from bot.weekdays import parse_days

CommaList = Annotated[tuple[str, ...], NoDecode]
# Stripped first, so a blank channel is refused like an empty one (the Settings view strips too).
Channel = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
DEFAULT_DATA_DIR = Path("./.salespulse")
DEFAULT_HOST = "127.0.0.1"


class Settings(BaseSettings):
    """Every setting of the contract, validated once at start-up."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True, case_sensitive=False
    )

    database_url: SecretStr | None = Field(None, alias="DATABASE_URL")
    salespulse_data_dir: Path = Field(DEFAULT_DATA_DIR, alias="SALESPULSE_DATA_DIR")
    host: str = Field(DEFAULT_HOST, alias="HOST")
    port: int = Field(3000, alias="PORT", ge=0, le=65535)
    public_url: str | None = Field(None, alias="PUBLIC_URL")

    slack_bot_token: SecretStr | None = Field(None, alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(None, alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = Field(None, alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field("https://slack.com/api/", alias="SLACK_API_URL")
    slack_sales_channel: Channel = Field("#sales-notifications", alias="SLACK_SALES_CHANNEL")
    slack_alerts_channel: Channel = Field("#system-alerts", alias="SLACK_ALERTS_CHANNEL")
    slack_reports_channel: Channel = Field("#daily-reports", alias="SLACK_REPORTS_CHANNEL")
    slack_sales_webhook_url: SecretStr | None = Field(None, alias="SLACK_SALES_WEBHOOK_URL")
    slack_alert_webhook_url: SecretStr | None = Field(None, alias="SLACK_ALERT_WEBHOOK_URL")

    stripe_webhook_secret: Annotated[tuple[SecretStr, ...], NoDecode] = Field(
        (), alias="STRIPE_WEBHOOK_SECRET"
    )
    stripe_api_key: SecretStr | None = Field(None, alias="STRIPE_API_KEY")
    stripe_api_url: str = Field("https://api.stripe.com", alias="STRIPE_API_URL")

    monitoring_token: MonitoringToken | None = Field(None, alias="MONITORING_TOKEN")
    intake_token: IntakeToken | None = Field(None, alias="INTAKE_TOKEN")

    store_timezone: str = Field("UTC", alias="STORE_TIMEZONE")
    # Every total is also given in this currency; unset → the Stripe account's default (GET /v1/account) when
    # STRIPE_API_KEY is set, else per-currency totals only (bot/currency.py).
    store_currency: str | None = Field(None, alias="STORE_CURRENCY")
    business_hours: Annotated[HourWindow, NoDecode] = Field(
        HourWindow(time(9), time(21)), alias="BUSINESS_HOURS"
    )
    # The days business hours apply on (the no-sales rules judge, warnings go out); other days are closed.
    business_days: Annotated[frozenset[int], NoDecode] = Field(frozenset(range(7)), alias="BUSINESS_DAYS")
    # Non-critical alerts wait until the window ends; critical ones still post, without the on-call mention.
    quiet_hours: Annotated[HourWindow | None, NoDecode] = Field(None, alias="QUIET_HOURS")
    morning_report_at: time = Field(time(9), alias="MORNING_REPORT_AT")
    evening_report_at: time = Field(time(18), alias="EVENING_REPORT_AT")
    site_url: str | None = Field(None, alias="SITE_URL")
    alert_check_interval_seconds: int = Field(60, alias="ALERT_CHECK_INTERVAL_SECONDS", ge=1, le=86400)
    # A sale first seen without its product or customer (a PaymentIntent before its checkout session or
    # invoice) waits this long for the event that names them; 0 pings at once.
    sale_settle_seconds: float = Field(5.0, alias="SALE_SETTLE_SECONDS", ge=0, le=3600)
    # How loud a subscription renewal is (bot/subscriptions/renewals.py): ping | coalesce | report.
    subscription_renewals: Renewals = Field(Renewals.COALESCE, alias="SUBSCRIPTION_RENEWALS")
    alert_rules_file: Path | None = Field(None, alias="ALERT_RULES_FILE")
    slash_command_allowed_users: CommaList = Field((), alias="SLASH_COMMAND_ALLOWED_USERS")
    slash_command_allowed_channels: CommaList = Field((), alias="SLASH_COMMAND_ALLOWED_CHANNELS")
    alert_responders: CommaList = Field((), alias="ALERT_RESPONDERS")
    salespulse_admins: CommaList = Field((), alias="SALESPULSE_ADMINS")
    trusted_proxies: Annotated[tuple[IPv4Network | IPv6Network, ...], NoDecode] = Field((), alias="TRUSTED_PROXIES")

    @field_validator("database_url", "slack_bot_token", "slack_signing_secret", "slack_app_token", "stripe_api_key",
                     "slack_sales_webhook_url", "slack_alert_webhook_url", "monitoring_token", "intake_token",
                     "site_url", "alert_rules_file", "public_url", "store_currency", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # `FOO=` in a .env file means "not configured", not "configured as empty".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("database_url")
    @classmethod
    def _postgres_uri(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_postgres_uri(value.get_secret_value())
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _with_trailing_slash(cls, value: str) -> str:
        # slack_sdk joins base_url + method name, so the base must end with "/".
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value if value.endswith("/") else value + "/"

    @field_validator("stripe_api_url", "site_url", "public_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/") if value else value

    @field_validator("slack_sales_webhook_url", "slack_alert_webhook_url")
    @classmethod
    def _secret_http_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL (Slack's incoming webhooks are https://hooks.slack.com/…)")
        return value

    @field_validator("store_currency")
    @classmethod
    def _iso_currency(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = value.strip().upper()
        # Babel's ISO 4217 list (CLDR): a typo such as USE would label every total with a currency no order has.
        if len(code) != 3 or not code.isascii() or not code.isalpha() or not is_currency(code):
            raise ValueError(f"expected an ISO 4217 currency code such as USD or EUR, got {value.strip()!r}")
        return code

    @field_validator("stripe_webhook_secret", mode="before")
    @classmethod
    def _secrets_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("stripe_webhook_secret")
    @classmethod
    def _signing_secrets(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        # Not the API key (sk_…/rk_…) or the endpoint's id (we_…): each endpoint's signing secret.
        if any(not secret.get_secret_value().startswith("whsec_") for secret in value):
            raise ValueError("each secret is an endpoint's signing secret, starting with whsec_")
        return value

    @field_validator("slash_command_allowed_users", "slash_command_allowed_channels", "alert_responders",
                     "salespulse_admins", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    # A typo in an access list would lock people out (or in) silently: each entry must be a Slack id (upper-case
    # letters and digits) of the kind the list is checked against — only ALERT_RESPONDERS expands user groups.
    @field_validator("slash_command_allowed_users", "salespulse_admins")
    @classmethod
    def _user_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return slack_ids(value, "UW", "a Slack user id (U…/W…)")

    @field_validator("alert_responders")
    @classmethod
    def _responder_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return slack_ids(value, "UWS", "a Slack user id (U…/W…) or user group id (S…)")

    @field_validator("slash_command_allowed_channels")
    @classmethod
    def _channel_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return slack_ids(value, "CGD", "a Slack channel id (C…/G…/D…; a channel's name will not do)")

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return tuple(ip_network(part.strip(), strict=False) for part in value.split(",") if part.strip())
            except ValueError as exc:
                raise ValueError(f"expected comma-separated IP addresses or CIDRs: {exc}") from None
        return value

    @field_validator("store_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return check_zone(value)

    @field_validator("business_hours", "quiet_hours", mode="before")
    @classmethod
    def _hour_window(cls, value: object) -> object:
        return (parse_window(value) if value.strip() else None) if isinstance(value, str) else value

    @field_validator("business_days", "morning_report_at", "evening_report_at", mode="before")
    @classmethod
    def _days_and_times(cls, value: object, info: ValidationInfo) -> object:
        parse = parse_days if info.field_name == "business_days" else parse_hhmm
        return parse(value) if isinstance(value, str) else value

    @field_validator("salespulse_data_dir", "host", "port", "store_timezone", "business_hours", "business_days",
                     "morning_report_at", "evening_report_at", "slack_api_url", "stripe_api_url",
                     "alert_check_interval_seconds", "sale_settle_seconds", "subscription_renewals", mode="before")
    @classmethod
    def _blank_is_default(cls, value: object, info: ValidationInfo) -> object:
        # Blank is unset here too (a copied .env template): a data dir "" would be the working directory, a host ""
        # every interface. Defined after the parsers above, it runs before them (last-defined "before" runs first).
        blank = isinstance(value, str) and not value.strip()
        return cls.model_fields[str(info.field_name)].default if blank else value

    @model_validator(mode="after")
    def _slack_mode_is_complete(self) -> Settings:
        if self.slack_bot_token is not None:
            if not self.slack_bot_token.get_secret_value().startswith("xoxb-"):
                raise ValueError("SLACK_BOT_TOKEN must be a bot token starting with xoxb-")
            if self.slack_app_token is None and self.slack_signing_secret is None:
                raise ValueError("SLACK_SIGNING_SECRET is required with SLACK_BOT_TOKEN unless "
                                 "SLACK_APP_TOKEN (Socket Mode) is set")
        if self.morning_report_at >= self.evening_report_at:
            raise ValueError("MORNING_REPORT_AT must be earlier in the day than EVENING_REPORT_AT")
        if self.slack_app_token is not None:
            if self.slack_bot_token is None:
                raise ValueError("SLACK_APP_TOKEN needs SLACK_BOT_TOKEN as well")
            if not self.slack_app_token.get_secret_value().startswith("xapp-"):
                raise ValueError("SLACK_APP_TOKEN must be an app-level token starting with xapp-")
        return self

    # Derived views, so callers never reimplement them.
    @property
    def sale_settle(self) -> timedelta:
        """SALE_SETTLE_SECONDS as a duration."""
        return timedelta(seconds=self.sale_settle_seconds)

    def in_business_hours(self, now: datetime) -> bool:
        """Whether `now` falls on a business day, inside business hours, in the store's zone."""
        return self.business_hours.open_on(now.astimezone(self.tz), self.business_days)

    def in_quiet_hours(self, now: datetime) -> bool:
        """Whether `now` falls inside QUIET_HOURS (never, when unset), in the store's zone."""
        return self.quiet_hours is not None and self.quiet_hours.contains(now.astimezone(self.tz).time())

    @property
    def tz(self) -> ZoneInfo:
        """The store's time zone."""
        return ZoneInfo(self.store_timezone)

    @property
    def local_mode(self) -> bool:
        """No Slack credentials at all: messages go to stdout and the local feed."""
        return self.slack_bot_token is None and not self.uses_incoming_webhooks

    @property
    def uses_incoming_webhooks(self) -> bool:
        """Pings go through incoming-webhook URLs (no bot token: no buttons, no updates)."""
        return self.slack_bot_token is None and (
            self.slack_sales_webhook_url is not None or self.slack_alert_webhook_url is not None
        )

    @property
    def public_base_url(self) -> str:
        """Where people reach this server (PUBLIC_URL), else its own listen address, without a trailing slash."""
        if self.public_url:
            return self.public_url
        host = "localhost" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def base_url_for(self, origin: str | None) -> str:
        """A link's base in the reply to a request sent to `origin` (scheme and host): PUBLIC_URL when set, else
        where that request went (behind a proxy, not our listen address), else — no request: Socket Mode — our
        listen address."""
        return self.public_url or origin or self.public_base_url

    def stripe_secrets(self) -> list[str]:
        """The webhook signing secrets in force (several during rotation)."""
        return [s.get_secret_value() for s in self.stripe_webhook_secret]


class SettingsError(Exception):
    """Configuration is missing or malformed; the message is one line naming the variable."""


def load_settings(**overrides: object) -> Settings:
    """Build Settings from the environment (and `.env`), turning validation errors into one clear line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]  # aliases are accepted at runtime
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem, naming the environment variable, never echoing a secret's value."""
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = error.get("loc") or ()
        name = str(loc[0]).upper() if loc else "configuration"
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        lines.append(f"invalid setting {name}: {message}" if loc else f"invalid configuration: {message}")
    return "; ".join(lines)
