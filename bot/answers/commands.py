"""Turn a command and its argument into the answer Message — shared by Slack, Socket Mode and the local feed.

Nothing here talks to Slack: the listeners ack with these Messages, the Share button posts them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bot.access import GroupCheck
from bot.answers.errors_snapshot import errors_snapshot
from bot.answers.gather import gather_health
from bot.answers.snapshots import COMMAND_BUDGET, sales_snapshot
from bot.blocks.common import refusal_message, usage_message
from bot.blocks.dashboard import dashboard_off_message, link_message, link_not_shared_message
from bot.blocks.errors import errors_message
from bot.blocks.health import health_message
from bot.blocks.message import Message
from bot.blocks.sales import sales_message
from bot.currency import CurrencyChoice
from bot.deps import Deps
from bot.periods import UnknownPeriod, parse_period
from bot.stripe.discount_job import tiers_unread
from bot.web.session import LINK_LIFETIME, LINK_SESSION_LIFETIME, sign_link

Render = Callable[[Deps, str, bool], Awaitable[Message]]
HELP_WORDS = frozenset({"help", "?", "-h", "--help"})
LINK_ARG = "link"  # `/sales link`: the dashboard sign-in link
ERRORS_DEFAULT_PERIOD = "1h"  # the original guide's error check looks at the last hour


def _unknown(command: str, arg: str) -> Message:
    return usage_message(command, problem=f"I don't know `{arg[:50]}` — here is what I understand:")


def dashboard_link(deps: Deps, *, shareable: bool, user_id: str | None, origin: str | None = None) -> Message:
    """`/sales link`: a signed, expiring URL that signs a phone in to the dashboard (never shared in channel), on
    PUBLIC_URL, else on the scheme and host the command was sent to (`origin`)."""
    token = deps.settings.monitoring_token
    if token is None:
        return dashboard_off_message()
    if not shareable:
        return link_not_shared_message()
    now = deps.clock()
    signed = sign_link(token.get_secret_value(), now=now, subject=user_id)
    url = f"{deps.settings.base_url_for(origin)}/dashboard/link/{signed}"
    return link_message(url, expires_at=now + LINK_LIFETIME, now=now, session=LINK_SESSION_LIFETIME,
                        tz=deps.settings.tz)


async def sales(deps: Deps, arg: str, shareable: bool) -> Message:
    """The /sales answer for `arg` (`link` is answered by answer(), which knows where the command was sent)."""
    now, tz = deps.clock(), deps.settings.tz
    try:
        period = parse_period(arg, now=now, tz=tz)
    except UnknownPeriod:
        return _unknown("/sales", arg)
    snapshot = await sales_snapshot(deps.pool, period=period, now=now, tz=tz,
                                    currency=CurrencyChoice.of(deps.settings), rhythm=deps.rhythm,
                                    tiers=tiers_unread(deps))
    return sales_message(snapshot, tz=tz, share_arg=arg if shareable else None)


async def errors(deps: Deps, arg: str, shareable: bool) -> Message:
    """The /errors answer for `arg` (default: the last hour)."""
    now, tz = deps.clock(), deps.settings.tz
    try:
        period = parse_period(arg or ERRORS_DEFAULT_PERIOD, now=now, tz=tz)
    except UnknownPeriod:
        return _unknown("/errors", arg)
    snapshot = await errors_snapshot(deps.pool, period=period, now=now)
    return errors_message(snapshot, tz=tz, share_arg=arg if shareable else None)


async def health(deps: Deps, arg: str, shareable: bool) -> Message:
    """The /health answer (it takes no argument)."""
    if arg:
        return _unknown("/health", arg)
    snapshot, groups = await asyncio.gather(gather_health(deps, budget=COMMAND_BUDGET), _responder_groups(deps))
    return health_message(snapshot, tz=deps.settings.tz, share_arg="" if shareable else None, groups=groups)


async def _responder_groups(deps: Deps) -> tuple[GroupCheck, ...]:
    """ALERT_RESPONDERS' user groups as Slack lists them (cached), within the command's budget: a slow Slack
    leaves the line out rather than the whole answer late."""
    try:
        async with asyncio.timeout(COMMAND_BUDGET):
            return await deps.access.responder_groups()
    except TimeoutError:
        return ()


RENDERERS: dict[str, Render] = {"/sales": sales, "/errors": errors, "/health": health}


async def answer(deps: Deps, *, command: str, text: str, user_id: str | None, channel_id: str | None,
                 shareable: bool = True, origin: str | None = None, outsider: bool = False) -> Message:
    """The full answer to a command as typed: refusal, usage, or the figures. `origin`: the scheme and host the
    command was sent to, for a link back to this server (none over Socket Mode); `outsider`: the caller is of
    another organisation than the one that installed the app."""
    arg = " ".join(text.split()).lower()
    if command == "/sales" and arg == LINK_ARG:
        # The dashboard has no channel: a link is for those who read revenue anywhere — asked for in a DM with the
        # bot as well as in an allowed channel — and a channel list alone gives nobody one.
        if not deps.access.reads_revenue(user_id, None, outsider=outsider):
            return refusal_message()
        return dashboard_link(deps, shareable=shareable, user_id=user_id, origin=origin)
    if not deps.access.reads_revenue(user_id, channel_id, outsider=outsider):
        return refusal_message()
    if arg in HELP_WORDS:
        return usage_message(command)
    render = RENDERERS.get(command)
    if render is None:
        return usage_message(command, problem="Unknown command.")
    started = time.perf_counter()
    try:
        return await render(deps, arg, shareable)
    finally:
        deps.metrics.command_latency.labels(command=command).observe(time.perf_counter() - started)


def ephemeral(msg: Message) -> dict[str, Any]:
    """Keyword arguments for ack()/respond(): an answer only the caller sees."""
    return {"response_type": "ephemeral", "text": msg.text, "blocks": msg.blocks}
