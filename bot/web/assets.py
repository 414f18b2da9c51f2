"""Static files and page templates from package data (`bot/web/`), read once, served under hashed URLs.

Read through importlib.resources, so a wheel serves the same files as a checkout. Every URL carries the
file's content hash, so a browser may cache it for good and still gets a new file after an upgrade.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from importlib import resources
from string import Template
from typing import Final

from aiohttp import web

PACKAGE: Final = "bot.web"
FOREVER: Final = "public, max-age=31536000, immutable"


def load_template(name: str) -> Template:
    """A page template (`$name` placeholders) from package data."""
    return Template(resources.files(PACKAGE).joinpath(name).read_text(encoding="utf-8"))


class StaticAssets:
    """Named files served at `{prefix}/{name}`; any other name is a 404."""

    def __init__(self, prefix: str, types: Mapping[str, str]) -> None:
        """`types`: file name → content type, for every file this prefix serves."""
        root = resources.files(PACKAGE)
        self.prefix = prefix
        self._types = dict(types)
        self._files = {name: root.joinpath(name).read_bytes() for name in types}
        self._urls = {name: f"{prefix}/{name}?v={hashlib.sha256(body).hexdigest()[:12]}"
                      for name, body in self._files.items()}

    def url(self, name: str) -> str:
        """The file's URL, carrying its hash."""
        return self._urls[name]

    async def serve(self, request: web.Request) -> web.Response:
        """GET {prefix}/{name}: the file, cached for good (its URL changes with its content)."""
        name = request.match_info["name"]
        body = self._files.get(name)
        if body is None:
            raise web.HTTPNotFound()
        return web.Response(body=body, content_type=self._types[name], charset="utf-8",
                            headers={"Cache-Control": FOREVER})

    def add_route(self, app: web.Application) -> None:
        """Serve the files under the prefix."""
        app.router.add_get(f"{self.prefix}/{{name}}", self.serve)
