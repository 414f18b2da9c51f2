-- Daily reports: one row per report per store-local day, written in the same transaction as its outbox
-- message, so several replicas, restarts and the CLI never post the same report twice. The row also
-- carries the chart until it is uploaded to the posted message's thread (once, too).
CREATE TABLE reports (
    kind           text NOT NULL CHECK (kind IN ('morning', 'evening')),
    local_date     date NOT NULL,                 -- the store-local day the report belongs to
    status         text NOT NULL CHECK (status IN ('sent', 'missed')),  -- missed: noticed too late to send
    scheduled_at   timestamptz NOT NULL,          -- that day's local report time, as an instant
    recorded_at    timestamptz NOT NULL,
    late           boolean NOT NULL DEFAULT false,
    source         text NOT NULL,                 -- scheduler | cli
    outbox_id      bigint REFERENCES outbox (id), -- the report's message (or the missed notice)
    chart_status   text NOT NULL DEFAULT 'none'
                   CHECK (chart_status IN ('none', 'pending', 'uploaded', 'saved', 'skipped', 'failed')),
    chart_png      bytea,                         -- kept only while the upload is pending
    chart_file_id  text,
    chart_attempts integer NOT NULL DEFAULT 0,
    chart_error    text,
    PRIMARY KEY (kind, local_date)
);
-- The upload stage looks only at reports whose chart still waits for its message.
CREATE INDEX reports_chart_pending_idx ON reports (outbox_id) WHERE chart_status = 'pending';
CREATE INDEX reports_scheduled_idx ON reports (scheduled_at);
