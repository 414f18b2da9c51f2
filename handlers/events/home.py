"""app_home_opened: publish the live Home view to whoever opened the tab, and keep it fresh after sales."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.blocks.home import restricted_home_view
from bot.deps import Deps
from bot.home.render import render_home


def register(app: AsyncApp, deps: Deps) -> None:
    """Add the listener, and let the publisher render through `deps`."""
    deps.home.bind(lambda buttons: render_home(deps, buttons=buttons), restricted=restricted_home_view(),
                   may_see=lambda user: deps.access.reads_revenue(user, None), may_act=deps.access.acts_on_alerts,
                   may_administer=deps.access.administers)
    # Changes on any replica refresh the tabs opened on this one: heard on the settings listener's connection.
    deps.home.share(deps.pool, deps.live.also_listen)

    @app.event("app_home_opened")
    async def home_opened(event: dict[str, Any]) -> None:
        # The same event fires for the Messages tab; only Home shows a view.
        if event.get("tab", "home") == "home" and event.get("user"):
            view = event.get("view") or {}  # absent the first time: no view on the tab yet
            await deps.home.opened(str(event["user"]), view_hash=view.get("hash"))
