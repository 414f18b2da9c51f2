-- Stripe reconciliation through the Events API: how each stored event arrived, and the poller's cursor.

-- How the event reached us. Every arrival path stores into the same (source, event_id)-keyed row, so an
-- event seen twice (webhook and Events API) is stored and pinged once whichever came first:
--   webhook    — POST /webhooks/stripe (and the store's own POST /webhooks/events)
--   events_api — polled from GET /v1/events with no webhook configured (polling-only operation)
--   recovered  — polled while a webhook is configured: the webhook missed it (or was minutes late)
--   backfill   — imported by `salespulse backfill`, never pinged
-- A constant default makes this column instant on a large table (PostgreSQL 11+); NOT VALID skips the scan
-- of existing rows (all 'webhook') while still checking every new one.
ALTER TABLE webhook_logs ADD COLUMN via text NOT NULL DEFAULT 'webhook';
ALTER TABLE webhook_logs ADD CONSTRAINT webhook_logs_via_known
    CHECK (via IN ('webhook', 'events_api', 'recovered', 'backfill')) NOT VALID;
-- Few rows arrive other than by webhook: /health, the report and the webhook-silence rule read only those.
CREATE INDEX webhook_logs_via_created_idx ON webhook_logs (via, created_at) WHERE via <> 'webhook';

-- One row per Stripe account polled (only 'events' today): the cursor and what /health shows.
CREATE TABLE stripe_sync_state (
    id                text PRIMARY KEY DEFAULT 'events',
    started_at        timestamptz NOT NULL,  -- since when this install watches Stripe: no ping for earlier events
    cursor_id         text,                  -- the newest event consumed, in Stripe's list order
    cursor_created    timestamptz,           -- its `created`: where to resume if Stripe no longer has it (30 days)
    last_poll_at      timestamptz,           -- last attempt, successful or not
    last_ok_at        timestamptz,
    last_error        text,
    last_error_at     timestamptz,
    last_reconcile_at timestamptz,           -- last pass over the last days (start-up and daily)
    updated_at        timestamptz NOT NULL DEFAULT now()
);
