"""Deps: everything a handler needs, built once at start-up and passed down — never global."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import asyncpg
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.access import AccessPolicy
from bot.alerts.rules import RuleSet
from bot.clock import Clock, utcnow
from bot.config import Settings
from bot.delivery.channels import ChannelDirectory
from bot.delivery.senders import Sender
from bot.delivery.worker import DeliveryWorker
from bot.home.publisher import HomePublisher
from bot.intake.batcher import IntakeBatcher
from bot.metrics import Metrics
from bot.rhythm.load import RhythmCache, RhythmSource
from bot.scheduling import JobFailures
from bot.settings.live import LiveSettings
from bot.socket_state import SocketWatch
from bot.stripe.refused import Refusals
from bot.web.feed import LocalFeed


@dataclass(frozen=True, slots=True)
class Deps:
    """The running service's collaborators."""

    live: LiveSettings  # the Settings and rules in force: the environment's, with changes made from Slack
    pool: asyncpg.Pool
    dsn: str  # for connections of their own (session-level locks, LISTEN), which must never be pooled ones
    sender: Sender
    worker: DeliveryWorker
    intake: IntakeBatcher
    access: AccessPolicy  # who reads revenue, acts on alerts, changes settings
    slack: AsyncWebClient | None = None  # None in local and incoming-webhook modes
    clock: Clock = utcnow
    metrics: Metrics = field(default_factory=Metrics)
    scheduler: AsyncIOScheduler | None = None
    job_failures: JobFailures = field(default_factory=JobFailures)
    started_at: dt.datetime = field(default_factory=utcnow)
    home: HomePublisher = field(default_factory=lambda: HomePublisher(client=None))  # the App Home tab
    feed: LocalFeed | None = None  # local mode only: what the feed page at GET / shows
    channels: ChannelDirectory | None = None  # with a bot token: the configured channels as Slack sees them
    socket: SocketWatch | None = None  # with an app token: whether the Socket Mode connection is up
    rhythm_cache: RhythmCache = field(default_factory=RhythmCache)  # built once per local hour, not per /sales
    refusals: Refusals = field(default_factory=Refusals)  # this replica's Stripe jobs refused a permission (/health)

    @property
    def settings(self) -> Settings:
        """The Settings in force now (read it where it is used: the Settings view can change it any time)."""
        return self.live.settings

    @property
    def rules(self) -> RuleSet:
        """The alert rules in force now."""
        return self.live.rules

    @property
    def rhythm(self) -> RhythmSource:
        """The store's rhythm as the rules in force read it, through the shared cache."""
        return RhythmSource(self.rhythm_cache, self.live.rules.rhythm)


class Runtime:
    """The one mutable slot: empty while the server starts, holding Deps once the database is ready."""

    def __init__(self) -> None:
        self.deps: Deps | None = None
        self.bolt: AsyncApp | None = None  # None in local and incoming-webhook modes
        self.signing_secret: str | None = None  # every request to /slack/events must carry its signature


RUNTIME = web.AppKey("runtime", Runtime)


def deps_of(request: web.Request) -> Deps | None:
    """The request's Deps, or None while the service is still starting."""
    return request.app[RUNTIME].deps
