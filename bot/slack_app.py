"""The Bolt app: built from explicit Settings, no token check before it serves (bot/slack_check.py asks Slack in the
background), served over HTTP or Socket Mode."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import aiohttp
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.web.async_client import AsyncWebClient

from bot.deps import Deps
from bot.slack_check import refusal, slack_error
from bot.socket_state import SocketWatch

log = logging.getLogger(__name__)
SOCKET_PING_INTERVAL = 10.0  # Bolt's default for its Socket Mode handler


# AsyncApp reads SLACK_BOT_TOKEN from the process environment itself (`token or os.environ.get(...)`), and given a
# client as well it warns at every start that this token goes unused. It does, by design: `authorize` hands each
# request the token from Settings. Passing token instead of client would lose our client's base URL, and token with
# `authorize` only trades this warning for another ("token will be ignored"); no argument stops the read.
_ENVIRONMENTS_TOKEN_UNUSED = warning_client_prioritized_and_token_skipped()


def _not_the_environments_token(record: logging.LogRecord) -> bool:
    return record.getMessage() != _ENVIRONMENTS_TOKEN_UNUSED


def build_bolt_app(deps: Deps, client: AsyncWebClient) -> AsyncApp:
    """An AsyncApp without listeners (the composition root adds them); every secret comes from Settings."""
    settings = deps.settings
    assert settings.slack_bot_token is not None, "Bolt runs only with a bot token"
    token = settings.slack_bot_token.get_secret_value()
    socket_mode = settings.slack_app_token is not None

    # A fixed authorization instead of Bolt's default, which calls auth.test on the first request: the
    # bot must start and answer even while Slack's API is unreachable (`salespulse check` verifies, and `run` asks
    # in the background: bot/slack_check.py).
    async def authorize(enterprise_id: str | None, team_id: str | None, **_: Any) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, bot_token=token)

    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
    # Bolt gets a client without a token (its per-request clients take the token from `authorize`), and the
    # same base URL and settings as ours, so GovSlack and the tests' fake are honoured.
    bolt_client = AsyncWebClient(base_url=client.base_url, timeout=client.timeout, retry_handlers=[])
    # Bolt answers ssl_check=1 (Slack's certificate check) with 200 before its own signature check, but no
    # request reaches Bolt unsigned: POST /slack/events verifies first (handlers/web/slack_events.py).
    bolt_log = logging.getLogger("salespulse.bolt")
    bolt_log.addFilter(_not_the_environments_token)  # once: a filter already there is not added again
    app = AsyncApp(client=bolt_client, signing_secret=secret, authorize=authorize, name="salespulse",
                   # Socket Mode frames are authenticated by the connection itself, not signed.
                   request_verification_enabled=not socket_mode, ssl_check_enabled=True, logger=bolt_log)

    @app.error
    async def on_error(error: Exception, body: dict[str, Any]) -> None:
        log.error("slack listener failed for %s: %s", body.get("command") or body.get("type"), error,
                  exc_info=error)

    return app


# Slack's Socket Mode URLs are temporary: after a failed handshake a new one is asked for, waiting this long
# (doubling from the first) between attempts.
RETRY_FIRST, RETRY_MAX = 1.0, 60.0
HANDSHAKE_TIMEOUT = 30.0  # a handshake that hangs (a black-holed network) counts as failed


def _describe(exc: BaseException) -> str:
    """One line for the log and /health: a refused app token says what to do; a failed handshake leaves out the
    temporary URL (its ticket lets whoever holds it connect as the app)."""
    if (refused := refusal("SLACK_APP_TOKEN", exc)) is not None:
        return refused
    if isinstance(exc, SlackApiError):
        return f"apps.connections.open: {slack_error(exc) or f'HTTP {exc.response.status_code}'}"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"{type(exc).__name__}: {exc.status} {exc.message}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _retry_after(exc: BaseException) -> float:
    """Slack's Retry-After when apps.connections.open is rate limited (0: none)."""
    if not isinstance(exc, SlackApiError) or slack_error(exc) != "ratelimited":
        return 0.0
    with contextlib.suppress(TypeError, ValueError):
        return float(exc.response.headers.get("Retry-After", 30))
    return 30.0


class FreshUrlSocketModeClient(SocketModeClient):
    """slack_sdk's aiohttp client, except that a failed handshake leads to a new URL from apps.connections.open,
    with backoff: the SDK's connect() retries the same temporary URL every ping_interval for ever, at start-up and
    on every reconnect (connect_to_new_endpoint calls connect()), so an outage longer than a URL's life left the
    bot deaf until restarted. The old socket is closed before a new one opens: never two at once. A failure is
    logged once, and again only when it changes or SAID_AGAIN_AFTER later (bot/socket_state.py), not per retry."""

    def __init__(self, *, watch: SocketWatch, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.watch = watch

    async def issue_new_wss_url(self) -> str:
        """A new URL, without the SDK's own error line for a refusal (connect() says it) or its rate-limit sleep."""
        response = await self.web_client.apps_connections_open(app_token=self.app_token)
        return str(response["url"])

    async def connect_to_new_endpoint(self, force: bool = False) -> None:
        """The SDK's reconnect (from its session monitor), with the new URL asked for by connect(): refused, the
        SDK's own asking logged an error every ping_interval."""
        acquired = False  # unless had within 5 s: another reconnect is under way
        with contextlib.suppress(TimeoutError):
            acquired = await asyncio.wait_for(self.connect_operation_lock.acquire(), timeout=5)
        try:
            if force or (acquired and not await self.is_connected()):
                self.wss_uri = None
                await self.connect()
        finally:
            if acquired:
                self.connect_operation_lock.release()

    async def connect(self) -> None:
        """Connect, asking for a new URL after each failure, until connected or closed (never raises)."""
        delay = RETRY_FIRST
        self.watch.lost()
        while not self.closed:
            wait = delay
            try:
                if self.wss_uri is None:
                    self.wss_uri = await self.issue_new_wss_url()
                await self._open_session(self.wss_uri)
                self.watch.connected()
                log.info("socket mode connected")
                return
            except Exception as exc:  # noqa: BLE001  # any failure means: another URL, later
                if self.closed:
                    return
                why, wait = _describe(exc), max(delay, _retry_after(exc))
                if self.watch.failed(why):  # news, not the same line at every retry
                    level = logging.ERROR if refusal("SLACK_APP_TOKEN", exc) else logging.WARNING
                    log.log(level, "socket mode not connected, retrying with a new URL in %.0f s: %s", wait, why)
            self.wss_uri = None  # spent or expired: the next attempt asks for a new one
            await asyncio.sleep(wait)
            delay = min(delay * 2, RETRY_MAX)

    async def _open_session(self, url: str) -> None:
        """One handshake, then the SDK's receiver and monitor for the new session (as its connect() does)."""
        self.auto_reconnect_enabled = False  # the old session's tasks must not reconnect meanwhile
        if (old := self.current_session) is not None:
            with contextlib.suppress(Exception):  # a broken old socket may fail to close; it is dropped anyway
                await old.close()
        if self.aiohttp_client_session.closed:
            self.aiohttp_client_session = aiohttp.ClientSession()
        async with asyncio.timeout(HANDSHAKE_TIMEOUT):
            self.current_session = await self.aiohttp_client_session.ws_connect(
                url, autoping=False, heartbeat=self.ping_interval, proxy=self.proxy,
                ssl=self.web_client.ssl if self.web_client.ssl is not None else True)
        self.auto_reconnect_enabled = self.default_auto_reconnect_enabled
        self.stale = False
        await self.current_session.ping(f"sdk-ping-pong:{time.time()}".encode())
        for task in (self.current_session_monitor, self.message_receiver):
            if task is not None:
                task.cancel()
        self.current_session_monitor = asyncio.ensure_future(self.monitor_current_session())
        self.message_receiver = asyncio.ensure_future(self.receive_messages())


class _SocketHandler(AsyncSocketModeHandler):
    """Bolt's Socket Mode adapter around a client built here (its own constructor builds the SDK's client)."""

    def __init__(self, app: AsyncApp, client: FreshUrlSocketModeClient) -> None:  # no super().__init__: see above
        self.app, self.app_token, self.client = app, client.app_token, client
        client.socket_mode_request_listeners.append(self.handle)  # type: ignore[arg-type]  # Bolt's own cast


async def run_socket_mode(app: AsyncApp, *, app_token: str, client: AsyncWebClient, watch: SocketWatch) -> None:
    """Keep a Socket Mode connection; `watch` tells /health whether it is up."""
    socket = FreshUrlSocketModeClient(app_token=app_token, web_client=client, logger=app.logger,
                                      ping_interval=SOCKET_PING_INTERVAL, watch=watch)
    handler = _SocketHandler(app, socket)
    try:
        await handler.connect_async()  # retries by itself, with a new URL each time
        await asyncio.Event().wait()
    finally:
        await handler.close_async()
