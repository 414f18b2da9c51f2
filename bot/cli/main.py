"""The `salespulse` command line: parse arguments, build Settings once, call one function."""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
from collections.abc import Sequence

import asyncpg

from bot import __version__
from bot.alerts.rules_file import RulesFileError, load_rules
from bot.config import Settings, SettingsError, load_settings
from bot.db import DB_REFUSED, MalformedDsn, connect_for_migrations, database_url, migrate, migrate_database

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
        conn = await connect_for_migrations(dsn)
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


def _serve(settings: Settings, *, demo: bool, fresh: bool = False) -> int:
    """`run`, or `demo` — which `run` also becomes when nothing at all is configured (`make run` out of the box)."""
    from bot.app import CannotListen, serve
    from bot.demo.runner import demo_command, nothing_configured

    try:
        if not demo and not nothing_configured(settings):
            asyncio.run(serve(settings))
            return 0
        if not demo:
            print("salespulse run: nothing is configured (no Slack token, DATABASE_URL, STRIPE_WEBHOOK_SECRET,"
                  " STRIPE_API_KEY, INTAKE_TOKEN or SITE_URL), so here is the demo. Set STRIPE_WEBHOOK_SECRET"
                  " (README: Connect Stripe) to watch your own store.", file=sys.stderr, flush=True)
        return asyncio.run(demo_command(settings, fresh=fresh))
    except CannotListen as exc:  # a port in use, say: one line, not a traceback
        print(f"salespulse {'demo' if demo else 'run'}: {exc}; set PORT or HOST", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C while the history loads, before the server handles signals itself
        return 130


# Loggers held at WARNING unless -v. APScheduler logs "Running job …" and "… executed successfully" at INFO for every
# run: with the fees and discounts jobs every 10 s, some 44,000 lines a day. Its warnings and errors still show (a
# missed run, a job that raised), and JobFailures logs each failure and reports it to /health (bot/scheduling.py).
QUIET_LOGGERS = ("apscheduler",)


def configure_logging(*, verbose: bool) -> None:
    """The log every command writes (`run` and `demo` alike): INFO, or DEBUG with -v, which also lets
    QUIET_LOGGERS speak."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and `python -m bot`."""
    args = _parser().parse_args(argv)
    configure_logging(verbose=args.verbose)
    try:
        settings = load_settings()
        load_rules(settings.alert_rules_file)  # a bad rules file is a configuration error too
    except (SettingsError, RulesFileError) as exc:
        print(f"salespulse: {exc}", file=sys.stderr)
        return 1
    try:
        return _dispatch(args, settings)
    except MalformedDsn as exc:  # a DSN asyncpg would misread: its own line, which never quotes it
        print(f"salespulse {args.command}: {exc}", file=sys.stderr)
        return 1
    except CANNOT_CONNECT as exc:  # a traceback would bury the one line that matters
        print(f"salespulse {args.command}: cannot use PostgreSQL — {type(exc).__name__}: {exc}. Check DATABASE_URL"
              " and that the server is up.", file=sys.stderr)
        return 1
    except asyncpg.PostgresError as exc:  # a read-only server (a standby), a missing privilege: one line too
        print(f"salespulse {args.command}: PostgreSQL refused — {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


# PostgreSQL unreachable, starting, full, refusing who we are, or refused a connection parameter: said in one line.
# Any other error PostgreSQL answers is said in one line as well; a port we cannot listen on is said by `_serve`.
# Other OSErrors are not the database's and keep their traceback, except FileNotFoundError: a Unix-socket
# DATABASE_URL (?host=/run/postgresql) whose server is down has no socket file to connect to.
CANNOT_CONNECT = (*DB_REFUSED, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError, TimeoutError,
                  asyncpg.TooManyConnectionsError, asyncpg.ClientConfigurationError, ConnectionError, socket.gaierror,
                  FileNotFoundError)


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    """Run the command asked for; its exit status."""
    if args.command in ("run", "demo"):
        return _serve(settings, demo=args.command == "demo", fresh=getattr(args, "fresh", False))
    if args.command == "migrate":
        return asyncio.run(_migrate(settings))
    if args.command == "check":
        from bot.cli.check import check_command

        return asyncio.run(check_command(settings))
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


