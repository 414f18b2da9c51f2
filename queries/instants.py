"""Instants as the intake's JSON rows carry them: whole microseconds since the epoch, read back in SQL by
`micros_at(bigint)` (migration 0021) — exact both ways, and an int costs the JSON encoder nothing."""

from __future__ import annotations

import datetime as dt
from typing import Final

_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND: Final = dt.timedelta(microseconds=1)


def micros(at: dt.datetime | None) -> int | None:
    """`at` as whole microseconds since the epoch; a naive time names no instant and raises TypeError."""
    return None if at is None else (at - _EPOCH) // _MICROSECOND
