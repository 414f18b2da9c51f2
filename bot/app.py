"""serve(settings): database, delivery worker and the aiohttp server, wired together. Wiring only."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

import handlers
from bot.access import AccessPolicy, GroupMembers
from bot.affiliation import auth_test, team_info
from bot.alerts.rules_file import load_rules
from bot.blocks.health import job_failure_message
from bot.clock import Clock, utcnow
from bot.config import Settings
from bot.db import create_pool, database_url, migrate_database, wait_for_database
from bot.delivery.channel_store import ChannelStore
from bot.delivery.channels import ChannelDirectory
from bot.delivery.senders import ConsoleSender, Sender, WebhookSender
from bot.delivery.webapi import WebApiSender
from bot.delivery.worker import DeliveryWorker
from bot.deps import RUNTIME, Deps, Runtime
from bot.home.publisher import HomePublisher
from bot.intake.batcher import IntakeBatcher
from bot.intake.inbox_apply import Applied
from bot.metrics import Metrics
from bot.scheduling import JobFailure, JobFailures, create_scheduler
from bot.settings.follow import Follower, channels_of
from bot.settings.live import LiveSettings
from bot.slack_app import build_bolt_app, run_socket_mode
from bot.slack_check import check_bot_token, ready_mode
from bot.socket_state import SocketWatch
from bot.stripe import received as stripe_received
from bot.web import middleware
from bot.web.feed import LocalFeed
from queries import outbox

log = logging.getLogger(__name__)

# Stripe events are a few KiB; anything near this is not one. aiohttp answers 413 beyond it.
MAX_BODY_BYTES = 1024 * 1024


def build_web_app() -> web.Application:
    """The aiohttp application with every route; Deps are attached once the database is ready."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[RUNTIME] = Runtime()
    middleware.install(app)
    handlers.add_routes(app)
    return app


def slack_client(settings: Settings) -> AsyncWebClient | None:
    """The Web API client, from explicit settings only (so nothing is read from the environment)."""
    if settings.slack_bot_token is None:
        return None
    # retry_handlers=[]: the outbox owns retries, pacing and Retry-After, durably.
    return AsyncWebClient(token=settings.slack_bot_token.get_secret_value(),
                          base_url=settings.slack_api_url, timeout=10, retry_handlers=[])


def group_members(client: AsyncWebClient) -> GroupMembers:
    """Slack's list of a user group's members (usergroups.users.list, scope usergroups:read)."""

    async def members(group: str) -> frozenset[str]:
        response = await client.usergroups_users_list(usergroup=group)
        return frozenset(str(user) for user in response.get("users") or ())

    return members


def access_policy(settings: Settings, client: AsyncWebClient | None) -> AccessPolicy:
    """The access policy; with a bot token it asks Slack about user groups, the installation and workspaces."""
    return AccessPolicy(settings) if client is None else AccessPolicy(
        settings, group_members=group_members(client), installation=auth_test(client), team_orgs=team_info(client))


def configured_channels(settings: Settings) -> dict[str, str]:
    """The logical channels and the Slack channel (name or id) each is configured to."""
    return channels_of(settings)


def make_sender(settings: Settings, client: AsyncWebClient | None, *, feed: LocalFeed | None = None,
                directory: ChannelDirectory | None = None) -> Sender:
    """Web API with a bot token; else incoming webhooks; else local mode (stdout, and the feed page)."""
    if client is not None:
        return WebApiSender(client, channels=configured_channels(settings),
                            directory=directory or ChannelDirectory(client, configured_channels(settings)))
    if settings.uses_incoming_webhooks:
        urls = {name: secret.get_secret_value() for name, secret in (
            ("sales", settings.slack_sales_webhook_url), ("alerts", settings.slack_alert_webhook_url))
            if secret is not None}
        return WebhookSender(urls)
    return ConsoleSender(listeners=[feed.add] if feed is not None else None)


async def announce_job_failure(deps: Deps, failure: JobFailure) -> None:
    """A failed scheduled job is posted to the alerts channel (and listed in /health)."""
    msg = job_failure_message(failure, tz=deps.settings.tz)
    await outbox.enqueue(deps.pool, dedupe_key=f"job-failure:{failure.job_id}:{failure.at.isoformat()}",
                         channel="alerts", kind="job_failure", payload=msg.as_payload())


@dataclass(frozen=True, slots=True)
class Services:
    """What `running()` started: the deps, the Bolt app (with a bot token) and the background tasks."""

    deps: Deps
    bolt: AsyncApp | None
    tasks: tuple[asyncio.Task[None], ...]

    def attach(self, app: web.Application) -> None:
        """Make the aiohttp app's routes serve these services."""
        app[RUNTIME].deps = self.deps
        app[RUNTIME].bolt = self.bolt
        secret = self.deps.live.env.slack_signing_secret
        # Whatever the mode: without a secret, /slack/events serves nothing (Socket Mode needs no HTTP door).
        app[RUNTIME].signing_secret = secret.get_secret_value() if secret is not None else None


def inbox_applied(deps: Deps, applied: Applied) -> None:
    """Events a burst stored in the inbox (answered 202 "queued") were applied: App Home refreshes, as it does for a
    webhook applied at once, and /metrics counts what became of each."""
    deps.home.changed()
    for sub, result in applied:
        deps.metrics.webhook_applied(sub.metric_source, sub.event_type, result.outcome.value)


def background_tasks(deps: Deps, bolt: AsyncApp | None) -> list[asyncio.Task[None]]:
    """Start what runs beside the server: delivery, intake, App Home, channel joins and Socket Mode."""
    deps.intake.on_applied = lambda applied: inbox_applied(deps, applied)
    tasks = [asyncio.create_task(deps.live.run(deps.pool, deps.dsn), name="settings"),
             asyncio.create_task(deps.worker.run(), name="delivery"),
             asyncio.create_task(deps.intake.run(), name="intake"),
             asyncio.create_task(deps.home.run(), name="home")]
    if deps.channels is not None:  # resolve and join in the background: start-up never waits for Slack
        tasks.append(asyncio.create_task(deps.channels.start(), name="channels"))
        tasks.append(asyncio.create_task(deps.channels.follow(deps.dsn), name="channel-status"))  # others' news
    token = deps.settings.slack_app_token
    if bolt is not None and deps.slack is not None and token is not None and deps.socket is not None:
        tasks.append(asyncio.create_task(run_socket_mode(
            bolt, app_token=token.get_secret_value(), client=deps.slack, watch=deps.socket), name="socket-mode"))
    return tasks


@contextlib.asynccontextmanager  # long: the composition root, in start-up order
async def running(settings: Settings, *, dsn: str, clock: Clock = utcnow, sender: Sender | None = None,
                  jobs: bool = True) -> AsyncIterator[Services]:
    """Pool, migrations, the delivery worker and (with a bot token) Bolt, for the duration of the block."""
    metrics = Metrics()
    await migrate_database(dsn)
    pool = await create_pool(dsn)
    try:
        live = LiveSettings(settings, load_rules(settings.alert_rules_file))
        await live.reload(pool)  # what was changed from Slack is in force from the start
        settings = live.settings
        client = slack_client(settings)
        feed = await LocalFeed.restored(pool, tz=settings.tz, clock=clock) if settings.local_mode else None
        channels = ChannelDirectory(client, configured_channels(settings), store=ChannelStore(pool)) if client else None
        sender = sender or make_sender(settings, client, feed=feed, directory=channels)
        worker = DeliveryWorker(pool=pool, sender=sender, tz=settings.tz, clock=clock, metrics=metrics, dsn=dsn)
        intake = IntakeBatcher.for_settings(settings, pool=pool, clock=clock, rebuild=stripe_received.rebuild)
        failures = JobFailures()
        scheduler = create_scheduler(settings.tz, failures)
        access = access_policy(settings, client)
        deps = Deps(live=live, pool=pool, dsn=dsn, sender=sender, worker=worker, intake=intake, slack=client,
                    access=access, clock=clock, metrics=metrics, scheduler=scheduler, job_failures=failures,
                    home=HomePublisher(client=client), feed=feed, channels=channels,
                    socket=SocketWatch(clock) if settings.slack_app_token else None)  # an app token needs a bot token
        live.on_change(Follower(deps))
        failures.on_failure = lambda failure: announce_job_failure(deps, failure)
        bolt = build_bolt_app(deps, client) if client is not None else None
        if bolt is not None:
            handlers.add_listeners(bolt, deps)
        tasks = background_tasks(deps, bolt)
        if jobs:  # tests drive the jobs themselves, with their own clock
            handlers.add_jobs(scheduler, deps, dsn=dsn)
        scheduler.start()
        try:
            yield Services(deps=deps, bolt=bolt, tasks=tuple(tasks))
        finally:
            scheduler.shutdown(wait=False)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await pool.close()


DRAIN_SECONDS = 10.0  # a stopping process's wait for its stored events to be applied (orchestrators allow ~30 s)


def _log_crash(task: asyncio.Task[None]) -> None:
    """A background task that ended with an error is logged, not left for the garbage collector to mention."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("%s stopped: %s", task.get_name(), exc, exc_info=exc)


async def stop_gracefully(runner: web.AppRunner, services: Services) -> None:
    """Stop taking requests and answer those in flight, then apply what the intake stored in the inbox: the
    background tasks (cancelled next) would otherwise leave it to another replica, or to the next start, 10 s on."""
    await runner.cleanup()
    if left := await services.deps.intake.drain(within=DRAIN_SECONDS):
        log.warning("stopping with %d received events not applied yet: the inbox keeps them for the next start "
                    "or another replica", left)


async def serve(settings: Settings, *, on_ready: Callable[[Services], Coroutine[Any, Any, None]] | None = None) -> None:
    """Run until SIGINT/SIGTERM: HTTP first (healthz says 'starting'), then the database, then ready.

    `on_ready` (the demo's simulator) runs alongside once everything is ready, and is cancelled at the end.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    app = build_web_app()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await _listen(runner, settings)
        configured = settings.database_url.get_secret_value() if settings.database_url else None
        async with database_url(configured, settings.salespulse_data_dir) as dsn:
            # PostgreSQL may still be starting beside us; /healthz says "starting" meanwhile, and a stop is heard.
            if not await _unless_stopped(wait_for_database(dsn), stop):
                return
            await _serve_ready(settings, app, runner, dsn, stop, on_ready)
    finally:
        if runner.server is not None:  # not stopped gracefully (start-up failed, or the stop did)
            await runner.cleanup()


class CannotListen(Exception):
    """HOST:PORT cannot be listened on (taken by another server, not this machine's, a privileged port)."""

    def __init__(self, host: str, port: int, reason: OSError) -> None:
        # The errno's own words: asyncio's message repeats the address, and a gaierror has only its strerror.
        why = os.strerror(reason.errno) if reason.errno and reason.errno > 0 else reason.strerror or str(reason)
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        super().__init__(f"cannot listen on {where} — {why[:1].lower()}{why[1:]}")


async def _listen(runner: web.AppRunner, settings: Settings) -> None:
    """Take HTTP requests on HOST:PORT; CannotListen if that address cannot be had."""
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
    except OSError as exc:
        raise CannotListen(settings.host, settings.port, exc) from exc
    log.info("listening on http://%s:%s", settings.host, settings.port)


async def _unless_stopped(work: Coroutine[Any, Any, None], stop: asyncio.Event) -> bool:
    """Run `work` unless `stop` is set first (then cancel it); whether it finished. Its error is raised."""
    task, stopped = asyncio.ensure_future(work), asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (task, stopped):
            if not t.done():
                t.cancel()
        await asyncio.gather(task, stopped, return_exceptions=True)
    if task.cancelled():
        return False
    task.result()
    return True


async def _serve_ready(settings: Settings, app: web.Application, runner: web.AppRunner, dsn: str,
                       stop: asyncio.Event, on_ready: Callable[[Services], Coroutine[Any, Any, None]] | None) -> None:
    """Everything started on the database, until `stop`."""
    async with running(settings, dsn=dsn) as services:
        services.attach(app)
        # Everything built so far lives as long as the process: out of the collector's sight, a full collection
        # scans only what requests create — ~1 ms, where scanning the ~95,000 start-up objects held the event
        # loop, and every webhook waiting on it, ~30 ms every few seconds under load.
        gc.freeze()
        log.info("ready: %s", ready_mode(settings))  # not "connected": Slack is asked next, in the background
        checking = asyncio.create_task(check_bot_token(services.deps), name="slack-check")
        extra = asyncio.create_task(on_ready(services), name="on-ready") if on_ready else None
        if extra is not None:
            extra.add_done_callback(_log_crash)
        try:
            await stop.wait()
        finally:
            checking.cancel()
            if extra is not None:
                extra.cancel()
                await asyncio.gather(extra, return_exceptions=True)
            await stop_gracefully(runner, services)
