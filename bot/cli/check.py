"""`salespulse check`: what is configured, and whether PostgreSQL, Slack and Stripe's endpoints answer."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import asyncpg

from bot import __version__
from bot.cli.listen import check_listen_address
from bot.config import Settings
from bot.db import database_url, dsn_errors, init_connection
from queries import health
from queries import settings as settings_q

if TYPE_CHECKING:  # the Slack SDK is imported only by the commands that talk to Slack
    from slack_sdk.web.async_client import AsyncWebClient


def _configured_dsn(settings: Settings) -> str | None:
    return settings.database_url.get_secret_value() if settings.database_url else None


async def check_command(settings: Settings) -> int:
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
    listen_ok = await check_listen_address(settings)  # every check runs and prints, whatever the others say
    database_ok = await _check_postgres(settings)
    slack_ok = await _check_slack(settings)
    key_ok = await _check_stripe_key(settings)
    stripe_ok = await _check_stripe_endpoints(settings)
    return 0 if listen_ok and database_ok and slack_ok and key_ok and stripe_ok else 1


# What the bot reads with STRIPE_API_KEY (GET, limit=1) and what goes unread without it; Events: read comes first.
READS = (("/v1/events", "the Events API poll: events the webhook misses"),
         ("/v1/checkout/sessions", "checkouts in progress"), ("/v1/charges", "fees"), ("/v1/payment_intents", "fees"),
         ("/v1/refunds", "fees"), ("/v1/disputes", "fees"), ("/v1/balance_transactions", "fees"),
         ("/v1/account", "store currency for fees"), ("/v1/subscriptions", "discounts in MRR"),
         ("/v1/coupons", "discounts in MRR"), ("/v1/prices", "tiered prices in MRR"), ("/v1/invoices", "backfill"))


async def _check_stripe_key(settings: Settings) -> bool:  # long: one verdict per resource, and how each is said
    """With STRIPE_API_KEY: each resource the bot reads asked once, naming the permissions the key lacks; False when
    Stripe rejects the key or it may not read events (nothing else then works)."""
    if settings.stripe_api_key is None:
        return True
    import aiohttp

    from bot.stripe.events_api import KeyRejected, StripeApi, StripeApiError, permission_name
    from bot.stripe.refused import INSTEAD

    lacks: dict[str, list[str]] = {}  # permission → what goes unread
    unchecked = []
    async with aiohttp.ClientSession() as session:
        api = StripeApi(session, api_key=settings.stripe_api_key.get_secret_value(), base_url=settings.stripe_api_url)
        for path, used_for in READS:
            if path == "/v1/account" and settings.store_currency is not None:
                continue  # never read: STORE_CURRENCY names the currency
            try:
                await (api.get(path) if path == "/v1/account" else api.list(path, [("limit", "1")]))
            except KeyRejected as exc:
                if exc.status == 401:
                    print(f"  stripe key:       FAILED — {exc}")
                    return False
                lacks.setdefault(exc.permission or path, []).append(used_for)
            except StripeApiError as exc:
                unchecked.append(f"{path} ({exc.status or exc})")
    for permission, unread in lacks.items():
        instead = f"; {INSTEAD[permission]}" if permission in INSTEAD else ""
        verdict = "PROBLEM" if permission == permission_name("/v1/events") else "note"
        print(f"  stripe key:       {verdict} — lacks {permission}: no {', '.join(dict.fromkeys(unread))}{instead}")
    if not lacks:
        print(f"  stripe key:       ok — reads all {len(READS) - len(unchecked)} resources asked")
    if unchecked:
        print(f"  stripe key:       not checked — {', '.join(unchecked)}")
    return permission_name("/v1/events") not in lacks


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
        # A key that may read events but not endpoints runs the bot fine: only this review needs the permission.
        if exc.status == 403:
            print(f"  stripe webhooks:  not reviewed — {exc}")
            return True
        print(f"  stripe webhooks:  could not read the endpoints — {exc}")
        return False
    # Without STRIPE_WEBHOOK_SECRET the Events API poll is the intake (README): no endpoint is no fault then.
    polling_only = not settings.stripe_webhook_secret
    print("  stripe webhooks:  " + ("ok" if ok else "note (polling only)" if polling_only else "PROBLEMS"))
    for line in lines:
        print(f"    {line}")
    return ok or polling_only


async def _check_postgres(settings: Settings) -> bool:
    """Reach PostgreSQL (the configured one, or the embedded one) and print its version; False if it failed."""
    try:
        async with database_url(_configured_dsn(settings), settings.salespulse_data_dir) as dsn:
            async with dsn_errors(dsn):  # asyncpg's ValueError would quote the part of the DSN it cannot read
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
            channels_ok = await _check_channels(client, settings)
            groups_ok = await _check_responder_groups(client, settings)
            scope_ok = await _check_team_read(client, auth.get("team_id"), auth.get("enterprise_id"))
            return await _check_socket_mode(client, settings) and channels_ok and groups_ok and scope_ok
        except SlackApiError as exc:
            data = exc.response.data  # a proxy's 5xx page has no "error": its HTTP status says more than None
            error = data.get("error") if isinstance(data, dict) else None
            print(f"  slack:            FAILED — auth.test: {error or f'HTTP {exc.response.status_code}'}")
            return False
        except (OSError, TimeoutError) as exc:
            print(f"  slack:            FAILED — cannot reach {settings.slack_api_url}: {exc}")
            return False
    return True


async def _check_socket_mode(client: AsyncWebClient, settings: Settings) -> bool:
    """With SLACK_APP_TOKEN: ask apps.connections.open for a URL (the socket itself is not opened: `run` does
    that), so a wrong or revoked app token fails here rather than leaving commands and buttons unanswered."""
    from slack_sdk.errors import SlackApiError

    if settings.slack_app_token is None:
        return True
    try:
        await client.apps_connections_open(app_token=settings.slack_app_token.get_secret_value())
    except SlackApiError as exc:
        data = exc.response.data
        error = data.get("error") if isinstance(data, dict) else None
        print(f"  socket mode:      FAILED — Slack refused SLACK_APP_TOKEN (apps.connections.open:"
              f" {error or f'HTTP {exc.response.status_code}'})")
        return False
    except (OSError, TimeoutError) as exc:
        print(f"  socket mode:      FAILED — cannot reach {settings.slack_api_url}: {exc}")
        return False
    print("  socket mode:      ok (the app token is accepted: apps.connections.open issues a URL)")
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


async def _check_responder_groups(client: AsyncWebClient, settings: Settings) -> bool:
    """Each user group of ALERT_RESPONDERS listed as the bot will list it; False if Slack refuses one (a missing
    usergroups:read scope, a mistyped id): its members would be refused on every alert button."""
    from bot.access import failure_reason
    from bot.app import group_members

    ok, fetch = True, group_members(client)
    for group in (r for r in settings.alert_responders if r.startswith("S")):
        try:
            members = await fetch(group)
        except Exception as exc:  # noqa: BLE001  # whatever failed, it is said, and check goes on
            print(f"  responders {group}:  PROBLEM — Slack cannot list this user group ({failure_reason(exc)}):"
                  " its members cannot act on alerts; check the app's usergroups:read scope and ALERT_RESPONDERS")
            ok = False
            continue
        print(f"  responders {group}:  ok — {len(members):,} member{'' if len(members) == 1 else 's'}")
    return ok


async def _check_team_read(client: AsyncWebClient, team: object, enterprise: object) -> bool:
    """On Enterprise Grid, team.info as the access policy asks it (bot/affiliation.py): without team:read people of
    the organisation's other workspaces are refused; False then. A standalone workspace needs no such look-up."""
    from slack_sdk.errors import SlackApiError

    from bot.access import failure_reason
    from bot.affiliation import TEAM_READ_MISSING

    if not enterprise or not isinstance(team, str):
        return True
    try:
        await client.team_info(team=team)
    except SlackApiError as exc:
        if failure_reason(exc) == "missing_scope":
            print(f"  slack team:read:  PROBLEM — {TEAM_READ_MISSING}")
            return False
        print(f"  slack team:read:  note — team.info: {failure_reason(exc)}")
        return True
    print("  slack team:read:  ok — workspaces of the organisation are placed in it (team.info)")
    return True
