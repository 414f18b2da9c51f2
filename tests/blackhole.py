"""A TCP proxy to PostgreSQL that can 'lose its host': after freeze(), nothing passes either way and no socket is
closed — what PostgreSQL sees when the machine of a replica loses power or its network (a node failure), as
opposed to a killed process, whose sockets the kernel closes."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qs, urlsplit, urlunsplit


class Blackhole:
    """`via` is the DSN of the same database through the proxy."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.frozen = asyncio.Event()
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None
        self.via = ""

    async def start(self) -> Blackhole:
        """Listen on an ephemeral 127.0.0.1 port."""
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        p = urlsplit(self.dsn)
        user = p.netloc.rsplit("@", 1)[0] + "@" if "@" in p.netloc else ""
        query = "&".join(f"{k}={v}" for k, vs in parse_qs(p.query).items() for v in vs if k != "host")
        self.via = urlunsplit((p.scheme, f"{user}127.0.0.1:{port}", p.path, query, p.fragment))
        return self

    async def _upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """TCP, or the Unix socket of the embedded server."""
        p = urlsplit(self.dsn)
        if p.hostname:
            return await asyncio.open_connection(p.hostname, p.port or 5432)
        return await asyncio.open_unix_connection(f"{parse_qs(p.query)['host'][0]}/.s.PGSQL.{p.port or 5432}")

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.CancelledError, OSError):
            self.writers.append(writer)
            if self.frozen.is_set():
                await asyncio.Event().wait()
            up_r, up_w = await self._upstream()
            self.writers.append(up_w)
            await asyncio.gather(self._pump(reader, up_w), self._pump(up_r, writer), return_exceptions=True)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            data = await reader.read(65536)
            if self.frozen.is_set():
                await asyncio.Event().wait()  # the host is gone: nothing more is sent, nothing is closed
            if not data:
                writer.close()
                return
            writer.write(data)
            await writer.drain()

    def freeze(self) -> None:
        """The machine behind the proxy is gone."""
        self.frozen.set()

    async def kill(self) -> None:
        """Close everything (PostgreSQL then sees the sessions end, as when a process is killed)."""
        if self.server is not None:
            self.server.close()
        for w in self.writers:
            with contextlib.suppress(Exception):
                w.transport.abort()
