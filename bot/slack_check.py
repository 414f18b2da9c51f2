"""What `salespulse run` says about Slack once it is ready: the mode it runs in — never "connected" before Slack has
said so — and then, asked in the background (start-up never waits for Slack), whether Slack takes the bot token:
"connected to Slack as @bot in Team", or one line naming the setting to fix. Socket Mode's app token is judged by
the connection itself (bot/slack_app.py), in the same words."""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from slack_sdk.errors import SlackApiError

from bot.affiliation import Org
from bot.config import Settings
from bot.delivery.senders import OUTAGE_ERRORS
from bot.deps import Deps
from bot.web.feed_door import where_messages_show

log = logging.getLogger(__name__)

# Slack's answers to a token it does not take (auth.test's and apps.connections.open's errors): only a new token,
# or the app installed again, fixes them.
TOKEN_REFUSED: Final = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
                                  "invalid_token", "not_allowed_token_type"})
WHAT_TO_DO: Final = {
    "SLACK_BOT_TOKEN": "copy the Bot User OAuth Token (xoxb-…) from your app's OAuth & Permissions page"
                       " (install the app again if it was uninstalled)",
    "SLACK_APP_TOKEN": "create an App-Level Token (xapp-…) with connections:write under your app's Basic"
                       " Information page",
}
# While Slack cannot be reached (or answers with an outage), auth.test is asked again, waiting this long (doubling).
RETRY_FIRST, RETRY_MAX = 5.0, 300.0


def slack_error(exc: BaseException) -> str | None:
    """The error code of Slack's answer refusing a call (None: no answer from Slack, or none in it)."""
    data = exc.response.data if isinstance(exc, SlackApiError) else None
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, str) and error else None


def refusal(setting: str, exc: BaseException) -> str | None:
    """"Slack refused SETTING (error): what to do", when `exc` is Slack refusing that token; else None."""
    error = slack_error(exc)
    if error not in TOKEN_REFUSED:
        return None
    return f"Slack refused {setting} ({error}): {WHAT_TO_DO[setting]}"


def ready_mode(settings: Settings) -> str:
    """How the bot reaches Slack, for the "ready:" line; nothing is claimed about a token not checked yet."""
    if settings.local_mode:  # the feed answers a browser on this machine only (bot/web/feed_door.py): not PUBLIC_URL
        return f"local mode ({where_messages_show(settings)})"
    if settings.slack_bot_token is None:
        return "incoming webhooks (no buttons or updates)"
    return "Slack mode (Socket Mode)" if settings.slack_app_token else "Slack mode (HTTP: Slack posts to /slack/events)"


def _outage(exc: Exception) -> bool:
    """Whether asking again later may get an answer: no answer at all, a 5xx, or Slack's own trouble."""
    if not isinstance(exc, SlackApiError):
        return True
    return exc.response.status_code >= 500 or slack_error(exc) in OUTAGE_ERRORS


async def check_bot_token(deps: Deps) -> None:
    """Ask Slack (auth.test) whether it takes the bot token, until it answers, and say what it said in one line.

    Its answer is also the installation the access policy would ask auth.test for (bot/affiliation.py): kept there,
    so Slack is not asked twice."""
    if deps.slack is None:
        return
    delay, unanswered = RETRY_FIRST, False
    while True:
        try:
            auth = await deps.slack.auth_test()
            break
        except Exception as exc:  # noqa: BLE001  # any failure is reported below, or asked again later
            if (refused := refusal("SLACK_BOT_TOKEN", exc)) is not None:
                log.error("%s", refused)
                return
            if not _outage(exc):
                log.error("Slack refused auth.test with SLACK_BOT_TOKEN (%s)", slack_error(exc) or exc)
                return
            if not unanswered:  # said once; asked again quietly
                log.warning("could not ask Slack whether it takes SLACK_BOT_TOKEN (%s): asking again in the"
                            " background", slack_error(exc) or f"{type(exc).__name__}: {exc}")
                unanswered = True
        await asyncio.sleep(delay)
        delay = min(delay * 2, RETRY_MAX)
    org = Org(team_id=auth.get("team_id") or None, enterprise_id=auth.get("enterprise_id") or None)
    if org.ids and deps.access.installation.known is None:
        deps.access.installation.known = org
    log.info("connected to Slack as @%s in %s", auth.get("user"), auth.get("team"))
