-- Events the store's own app reports through POST /webhooks/events: errors and sync failures (e.g. an
-- order that did not reach GoHighLevel). Orders it reports go to `orders` through the normal intake.
CREATE TABLE app_events (
    id          bigserial PRIMARY KEY,
    source      text NOT NULL DEFAULT 'app',       -- the reporting component, e.g. checkout-api
    event_id    text,                              -- the client's id: a resend is a no-op; NULL = no id
    kind        text NOT NULL,
    system      text,                              -- sync_failure: the system that was not reached
    message     text NOT NULL,
    order_id    text,                              -- the store's order the event is about, when known
    context     jsonb NOT NULL DEFAULT '{}'::jsonb,
    occurred_at timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- NULLs are distinct in a unique constraint, so events sent without an id are all kept.
    CONSTRAINT app_events_event_unique UNIQUE (event_id),
    CONSTRAINT app_events_kind_known CHECK (kind IN ('error', 'sync_failure'))
);
-- "How many errors / sync failures in this window" and "the latest ones" read only this index's range.
CREATE INDEX app_events_kind_occurred_idx ON app_events (kind, occurred_at);
