"""Every entry point, thin: parse input, call bot/, render, reply. No handler imports another.

The composition root (`bot.app`) wires them through the three functions below, so that adding an entry
point is one line here and nothing in `bot/` names a handler module.
"""

from __future__ import annotations

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from slack_bolt.async_app import AsyncApp

from bot.deps import Deps
from handlers.actions import alerts as alert_buttons
from handlers.actions import settings as settings_view
from handlers.actions import share
from handlers.commands import slash
from handlers.events import home
from handlers.scheduled import alerts as alert_jobs
from handlers.scheduled import discounts as discount_jobs
from handlers.scheduled import open_checkouts as open_checkout_jobs
from handlers.scheduled import reports as report_jobs
from handlers.scheduled import retention as retention_jobs
from handlers.scheduled import settlements as settlement_jobs
from handlers.scheduled import stripe_sync as stripe_sync_jobs
from handlers.web import dashboard, feed, healthz, metrics, monitoring, slack_events
from handlers.webhooks import events as events_webhook
from handlers.webhooks import stripe as stripe_webhook


def add_routes(app: web.Application) -> None:
    """Every HTTP route."""
    for module in (healthz, metrics, monitoring, dashboard, slack_events, stripe_webhook, events_webhook, feed):
        module.register(app)


def add_listeners(app: AsyncApp, deps: Deps) -> None:
    """Every Slack listener: commands, buttons, the Settings view, App Home."""
    for module in (slash, share, alert_buttons, settings_view, home):
        module.register(app, deps)


def add_jobs(scheduler: AsyncIOScheduler, deps: Deps, *, dsn: str) -> None:
    """Every periodic job; each feature adds its own here."""
    alert_jobs.register(scheduler, deps, dsn=dsn)
    stripe_sync_jobs.register(scheduler, deps)
    settlement_jobs.register(scheduler, deps)
    discount_jobs.register(scheduler, deps)
    open_checkout_jobs.register(scheduler, deps)
    report_jobs.register(scheduler, deps)
    retention_jobs.register(scheduler, deps)
