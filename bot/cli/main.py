"""The `salespulse` command line: parse arguments, build Settings once, call one function."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import socket
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import asyncpg

from bot import __version__
from bot.alerts.rules_file import RulesFileError, load_rules
from bot.config import Settings, SettingsError, load_settings
from bot.db import DB_REFUSED, database_url, init_connection, migrate, migrate_database
from queries import health
from queries import settings as settings_q

if TYPE_CHECKING:  # the Slack SDK is imported only by the commands that talk to Slack
    from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger("salespulse")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="salespulse", description="Watch your store's sales from Slack.")
    parser.add_argument("--version", action="version", version=f"salespulse {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="serve everything (migrations applied first)")
    sub.add_parser("demo", help="local mode with synthetic history and a live simulator").add_argument(
        "--fresh", action="store_true", help="start over: drop the demo's database (its data, settings, alerts)")
    sub.add_parser("migrate", help="apply schema migrations and exit")
    sub.add_parser("check", help="validate configuration, reach Postgres and Slack; exit 1 on any problem")
    seed = sub.add_parser("seed", help="bulk-load synthetic orders (COPY), migrations applied first")
    seed.add_argument("--orders", type=_at_least_one, required=True, metavar="N",
                      help="successful orders to load (completed, ~3%% later fully refunded); failed payment"
                           " attempts come on top (~4%% of all attempts), with checkout sessions and webhook logs")
    seed.add_argument("--days", type=_at_least_one, default=30, metavar="D",
                      help="spread them over the D days ending now (default: 30)")
    seed.add_argument("--subscriptions", type=_at_least_one, default=0, metavar="S",
                      help="also S subscriptions with their MRR ledger over the last 30 days (default: 0)")
    backfill = sub.add_parser("backfill", help="import Stripe history (no pings): the Events API for the last 30"
                                               " days, the Checkout Sessions and payments listed before that")
    backfill.add_argument("--days", type=_at_least_one, required=True, metavar="N",
                          help="import the N days ending now (needs STRIPE_API_KEY; read access is enough)")
    report = sub.add_parser("report", help="render and post a daily report (once per day, like the scheduler)")
    report.add_argument("which", choices=["morning", "evening"])
    report.add_argument("--date", metavar="YYYY-MM-DD",
                        help="the store-local day of the report (default: today); the morning report of a"
                             " day covers the night before and the previous day")
    report.add_argument("--dry-run", action="store_true", help="print the report; record and post nothing")
    return parser


def _at_least_one(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _configured_dsn(settings: Settings) -> str | None:
    return settings.database_url.get_secret_value() if settings.database_url else None


async def _migrate(settings: Settings) -> int:
    async with database_url(_configured_dsn(settings), settings.salespulse_data_dir) as dsn:
        applied = await migrate_database(dsn)
    print(f"applied {len(applied)} migration(s): {', '.join(applied)}" if applied else "schema is up to date")
    return 0


async def _seed(settings: Settings, *, orders: int, days: int, subscriptions: int = 0) -> int:
    """Apply migrations, bulk-load the synthetic history with a progress line per chunk, print a summary."""
    import secrets
    import time

    from bot.clock import utcnow
    from bot.demo.load import load
    from bot.demo.seed import SeedCounts, SeedSpec, generate

    token = secrets.token_hex(4)  # in every id of this run: seeding again never collides
    spec = SeedSpec(orders=orders, days=days, now=utcnow(), tz=settings.tz, seed=int(token, 16), token=token)
    started = 0.0

    def progress(done: SeedCounts) -> None:
        rate = done.rows / max(time.perf_counter() - started, 1e-9)
        print(f"seed: {done.orders:,}/{orders:,} orders ({100 * done.orders // orders}%), {rate:,.0f} rows/s",
              file=sys.stderr, flush=True)

    async with database_url(_configured_dsn(settings), settings.salespulse_data_dir) as dsn:
        # A plain connection: binary COPY cannot use the pool's text-only jsonb codec (see queries.seed).
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            await migrate(conn)
            started = time.perf_counter()
            totals = await load(conn, generate(spec), progress=progress, finishing=lambda: print(
                "seed: every row copied; building indexes and rollups …", file=sys.stderr, flush=True))
            if subscriptions > 0:
                from bot.demo.subscription_history import seed_subscriptions

                snapshots = await seed_subscriptions(conn, subscribers=subscriptions, now=spec.now, seed=spec.seed,
                                                     token=token)
                print(f"seeded {subscriptions:,} subscriptions ({snapshots:,} MRR snapshots)", file=sys.stderr)
        finally:
            await conn.close()
    seconds = time.perf_counter() - started
    print(f"seeded {totals.orders:,} orders, {totals.sessions:,} checkout sessions, {totals.failed:,} failed"
          f" payments, {totals.webhook_logs:,} webhook logs over {days} days in {seconds:.1f} s"
          f" ({totals.rows / seconds:,.0f} rows/s, run {token})")
    return 0


async def _check(settings: Settings) -> int:
    """Print what is configured and whether each dependency answers; 1 if anything failed."""
    print(f"salespulse {__version__}")
    print(f"  store time zone:  {settings.store_timezone}, business hours {settings.business_hours}")
    print(f"  channels:         sales {settings.slack_sales_channel}, alerts {settings.slack_alerts_channel},"
          f" reports {settings.slack_reports_channel}")
    print(f"  stripe intake:    {len(settings.stripe_secrets())} signing secret(s)"
          + ("" if settings.stripe_secrets()
             else " — STRIPE_WEBHOOK_SECRET unset, /webhooks/stripe answers 503"))
    if settings.stripe_api_key is None:
        print("  stripe events:    off — set STRIPE_API_KEY to recover events the webhook misses")
    else:
        kind = "restricted" if settings.stripe_api_key.get_secret_value().startswith("rk_") else "secret"
        print(f"  stripe events:    polls {settings.stripe_api_url} every minute ({kind} key)")
    database_ok = await _check_postgres(settings)  # every check runs and prints, whatever the others say
    slack_ok = await _check_slack(settings)
    stripe_ok = await _check_stripe_endpoints(settings)
    return 0 if database_ok and slack_ok and stripe_ok else 1


async def _check_stripe_endpoints(settings: Settings) -> bool:
    """With STRIPE_API_KEY: the webhook endpoints' event types and API versions; False if sales would be missed."""
    if settings.stripe_api_key is None:
        return True
    import aiohttp

    from bot.stripe.endpoints import review_endpoints
    from bot.stripe.events_api import StripeApi, StripeApiError

    try:
        async with aiohttp.ClientSession() as session:
            api = StripeApi(session, api_key=settings.stripe_api_key.get_secret_value(),
                            base_url=settings.stripe_api_url)
            lines, ok = await review_endpoints(api, public_url=settings.public_url)
    except StripeApiError as exc:
        print(f"  stripe webhooks:  could not read the endpoints — {exc}")
        return False
    print("  stripe webhooks:  " + ("ok" if ok else "PROBLEMS"))
    for line in lines:
        print(f"    {line}")
    return ok


async def _check_postgres(settings: Settings) -> bool:
    """Reach PostgreSQL (the configured one, or the embedded one) and print its version; False if it failed."""
    try:
        async with database_url(_configured_dsn(settings), settings.salespulse_data_dir) as dsn:
            conn = await asyncpg.connect(dsn, timeout=10)
            version = await health.server_version(conn)
            stored = await _stored_settings(conn)
            await conn.close()
        where = "configured DATABASE_URL" if settings.database_url else "embedded"
        print(f"  postgres:         ok ({where}, PostgreSQL {version})")
        for o in stored:  # the values above are the environment's; these win over them (README, Settings)
            print(f"  set from Slack:   {o.key} = {json.dumps(o.value)} (by {o.updated_by},"
                  f" {o.updated_at:%Y-%m-%d %H:%M %Z}) — wins over the environment")
    except (OSError, asyncpg.PostgresError, asyncpg.ClientConfigurationError, TimeoutError) as exc:
        print(f"  postgres:         FAILED — {type(exc).__name__}: {exc}")
        return False
    return True


async def _stored_settings(conn: asyncpg.Connection) -> list[settings_q.Override]:
    """The settings saved from Slack's Settings view; none before the migrations created their table."""
    await init_connection(conn)  # stored values are jsonb
    try:
        return await settings_q.overrides(conn)
    except asyncpg.UndefinedTableError:
        return []


async def _check_slack(settings: Settings) -> bool:
    """Call auth.test with the bot token (when there is one) and print who we are; False if it failed."""
    from slack_sdk.errors import SlackApiError

    from bot.app import slack_client

    client = slack_client(settings)
    if client is None:
        mode = "incoming webhooks (no buttons or updates)" if settings.uses_incoming_webhooks else \
            "local mode (no Slack token): messages print to stdout"
        print(f"  slack:            {mode}")
    else:
        try:
            auth = await client.auth_test()
            print(f"  slack:            ok (team {auth.get('team')}, bot user {auth.get('user')},"
                  f" {'Socket Mode' if settings.slack_app_token else 'HTTP'} mode)")
            return await _check_channels(client, settings)
        except SlackApiError as exc:
            data = exc.response.data
            error = data.get("error") if isinstance(data, dict) else exc.response.status_code
            print(f"  slack:            FAILED — auth.test: {error}")
            return False
        except (OSError, TimeoutError) as exc:
            print(f"  slack:            FAILED — cannot reach {settings.slack_api_url}: {exc}")
            return False
    return True


async def _check_channels(client: AsyncWebClient, settings: Settings) -> bool:
    """Name every configured channel and whether the bot can use it (nothing is joined here); False if not."""
    from bot.app import configured_channels
    from bot.delivery.channels import ChannelDirectory, Membership

    directory = ChannelDirectory(client, configured_channels(settings))
    await directory.resolve()
    for status in directory.statuses():
        verdict = "ok" if status.membership is Membership.MEMBER else \
            "note" if status.usable else "PROBLEM"
        print(f"  {'channel ' + status.logical + ':':18}{verdict} — {status.describe()}")
    return all(status.usable for status in directory.statuses())


def _serve(settings: Settings, *, demo: bool, fresh: bool = False) -> int:
    """`run`, or `demo` — which `run` also becomes when nothing at all is configured (`make run` out of the box)."""
    from bot.app import serve
    from bot.demo.runner import demo_command, nothing_configured

    if not demo and not nothing_configured(settings):
        asyncio.run(serve(settings))
        return 0
    if not demo:
        print("salespulse run: nothing is configured (no Slack token, DATABASE_URL, STRIPE_WEBHOOK_SECRET,"
              " STRIPE_API_KEY, INTAKE_TOKEN or SITE_URL), so here is the demo. Set STRIPE_WEBHOOK_SECRET"
              " (README: Connect Stripe) to watch your own store.", file=sys.stderr, flush=True)
    try:
        return asyncio.run(demo_command(settings, fresh=fresh))
    except KeyboardInterrupt:  # Ctrl-C while the history loads, before the server handles signals itself
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and `python -m bot`."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
        load_rules(settings.alert_rules_file)  # a bad rules file is a configuration error too
    except (SettingsError, RulesFileError) as exc:
        print(f"salespulse: {exc}", file=sys.stderr)
        return 1
    try:
        return _dispatch(args, settings)
    except CANNOT_CONNECT as exc:  # a traceback would bury the one line that matters
        print(f"salespulse {args.command}: cannot use PostgreSQL — {type(exc).__name__}: {exc}. Check DATABASE_URL"
              " and that the server is up.", file=sys.stderr)
        return 1


# PostgreSQL unreachable, starting, full, refusing who we are, or refused a connection parameter: said in one line.
# Other OSErrors (a port in use) are not the database's and keep their traceback.
CANNOT_CONNECT = (*DB_REFUSED, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError, TimeoutError,
                  asyncpg.TooManyConnectionsError, asyncpg.ClientConfigurationError, ConnectionError, socket.gaierror)


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    """Run the command asked for; its exit status."""
    if args.command in ("run", "demo"):
        return _serve(settings, demo=args.command == "demo", fresh=getattr(args, "fresh", False))
    if args.command == "migrate":
        return asyncio.run(_migrate(settings))
    if args.command == "check":
        return asyncio.run(_check(settings))
    if args.command == "seed":
        return asyncio.run(_seed(settings, orders=args.orders, days=args.days, subscriptions=args.subscriptions))
    if args.command == "backfill":
        from bot.stripe.backfill import backfill_command

        return asyncio.run(backfill_command(settings, days=args.days))
    if args.command == "report":
        from bot.cli.report import report_command

        return asyncio.run(report_command(settings, which=args.which, date=args.date, dry_run=args.dry_run))
    print(f"salespulse {args.command}: not yet available in this version", file=sys.stderr)
    return 2


