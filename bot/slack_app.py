"""The Bolt app: built from explicit Settings, no token check at start-up, served over HTTP or Socket Mode."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.web.async_client import AsyncWebClient

from bot.deps import Deps

log = logging.getLogger(__name__)


def build_bolt_app(deps: Deps, client: AsyncWebClient) -> AsyncApp:
    """An AsyncApp without listeners (the composition root adds them); every secret comes from Settings."""
    settings = deps.settings
    assert settings.slack_bot_token is not None, "Bolt runs only with a bot token"
    token = settings.slack_bot_token.get_secret_value()
    socket_mode = settings.slack_app_token is not None

    # A fixed authorization instead of Bolt's default, which calls auth.test on the first request: the
    # bot must start and answer even while Slack's API is unreachable (`salespulse check` verifies).
    async def authorize(enterprise_id: str | None, team_id: str | None, **_: Any) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, bot_token=token)

    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
    # Bolt gets a client without a token (its per-request clients take the token from `authorize`), and the
    # same base URL and settings as ours, so GovSlack and the tests' fake are honoured.
    bolt_client = AsyncWebClient(base_url=client.base_url, timeout=client.timeout, retry_handlers=[])
    app = AsyncApp(client=bolt_client, signing_secret=secret, authorize=authorize, name="salespulse",
                   # Socket Mode frames are authenticated by the connection itself, not signed.
                   request_verification_enabled=not socket_mode, ssl_check_enabled=False,
                   logger=logging.getLogger("salespulse.bolt"))

    @app.error
    async def on_error(error: Exception, body: dict[str, Any]) -> None:
        log.error("slack listener failed for %s: %s", body.get("command") or body.get("type"), error,
                  exc_info=error)

    return app


async def run_socket_mode(app: AsyncApp, *, app_token: str, client: AsyncWebClient) -> None:
    """Keep a Socket Mode connection: retry the first connect with backoff (Slack may be down at start)."""
    from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler

    handler = AsyncSocketModeHandler(app, app_token=app_token, web_client=client)
    delay = 1.0
    try:
        while True:
            try:
                handler.client.wss_uri = await handler.client.issue_new_wss_url()  # errors reach the backoff below
                await handler.connect_async()  # the client reconnects by itself once connected
                log.info("socket mode connected")
                await asyncio.Event().wait()
            except (OSError, TimeoutError, ValueError) as exc:
                log.warning("socket mode connection failed, retrying in %.0f s: %s", delay, exc)
            except Exception as exc:  # noqa: BLE001  # slack_sdk raises bare Exceptions here; keep retrying
                log.warning("socket mode connection failed, retrying in %.0f s: %s", delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)
    finally:
        await handler.close_async()
