"""SQL the demo runs against the embedded server itself: a fresh, empty database for each demo."""

from __future__ import annotations

from typing import Final

from queries.executor import Executor

DEMO_DATABASE: Final = "salespulse_demo"
# WITH (FORCE): a demo killed a moment ago may still have sessions open on it.
DROP_DEMO_DATABASE: Final = "DROP DATABASE IF EXISTS salespulse_demo WITH (FORCE)"
CREATE_DEMO_DATABASE: Final = "CREATE DATABASE salespulse_demo"


async def recreate_demo_database(db: Executor) -> str:
    """Drop the demo database if it exists and create it empty; its name. Not in a transaction (PostgreSQL
    refuses CREATE DATABASE inside one), so run it on a plain connection."""
    await db.execute(DROP_DEMO_DATABASE)
    await db.execute(CREATE_DEMO_DATABASE)
    return DEMO_DATABASE
