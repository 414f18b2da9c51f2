"""Executor: what every query function takes — an asyncpg Pool or Connection, or anything shaped like them."""

from __future__ import annotations

from typing import Any, Protocol


class Executor(Protocol):
    """What query functions need: an asyncpg Pool or Connection."""

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str: ...
    async def fetch(self, query: str, *args: Any, timeout: float | None = None) -> list[Any]: ...
    async def fetchrow(self, query: str, *args: Any, timeout: float | None = None) -> Any: ...
    async def fetchval(self, query: str, *args: Any, column: int = 0,
                       timeout: float | None = None) -> Any: ...
