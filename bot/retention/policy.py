"""How long salespulse keeps what grows with every event, message and probe: the one place these periods are set.

Never pruned: business data (orders, payment_refs, checkout_sessions, payment_failures, disputes, subscriptions and
their snapshots, the rollups), and the rows that make a redelivery a no-op or that a later event still needs —
a webhook_logs row keeps its (source, event_id) key and the columns /errors and the guide's SQL read, an outbox row
its dedupe_key, its Slack address and the keys pointing at it; only their heavy parts go. Already pruned where they
are written: delivery_errors after 90 days (queries/outbox.py RECORD_ERROR), attempt_declines after 2 days
(queries/declines.py KEEP), report_heartbeats after 3 days (bot/reports/reporter.py); delivery_attempts and
webhook_inbox empty themselves. Kept whole, a few rows a day at most: alerts, alert_notifications (an alert's count
numbers its next message, alert:<id>:<n>:<kind>), alert_actions, settings_audit, reports.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

# Stripe retries a webhook for 3 days and its Events API, which reconciliation and backfill read, reaches 30 days back
# (bot/stripe/sync.py); `/errors 30d` lists the last 30 days' refused events. Nothing reads a body back (the intake
# dedupes on the event id), so it is kept while any of those can bring the event again or show it, and a few days more.
WEBHOOK_BODIES_KEPT: Final = dt.timedelta(days=35)
# A settled message's payload is not read again (edits and replies need its row and Slack address; a posted sale
# ping keeps its fields, which a later event about the order is compared with): a month of what went out stays as
# it was posted, to look into, like the webhook bodies.
MESSAGE_PAYLOADS_KEPT: Final = dt.timedelta(days=35)
# The site rules and /health read the last few probes only.
SITE_PROBES_KEPT: Final = dt.timedelta(days=35)
# /errors and the errors JSON read them by period (up to 30 days, or a date named): kept as long as Slack's delivery
# errors are, far longer than the store's app would resend one (a resend with the same id is a no-op while kept).
APP_EVENTS_KEPT: Final = dt.timedelta(days=90)

# Rows per statement, each its own transaction: an update of 5,000 webhook rows takes tens of milliseconds, so no
# intake writer waits on a row of it for longer.
CHUNK_ROWS: Final = 5_000
# Between statements the intake has the tables to itself for a moment.
CHUNK_PAUSE_SECONDS: Final = 0.05
# The day's run starts at the first tick after this local time (a quiet hour for most stores), or at start-up later.
RUN_AFTER: Final = dt.time(4, 0)
TICK_EVERY: Final = dt.timedelta(hours=1)
