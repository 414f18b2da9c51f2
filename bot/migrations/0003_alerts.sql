-- Alerts with an Alertmanager-style lifecycle, their notification log, and the site probe's results.

-- One row per alert occurrence: from the first evaluation that saw the condition until it is resolved.
CREATE TABLE alerts (
    id                bigserial PRIMARY KEY,
    fingerprint       text NOT NULL,                 -- rule name + labels: the alert's identity
    rule              text NOT NULL,
    family            text NOT NULL,                 -- inhibition: a firing critical mutes warnings of its family
    severity          text NOT NULL CHECK (severity IN ('critical', 'warning', 'info')),
    labels            jsonb NOT NULL DEFAULT '{}'::jsonb,
    title             text NOT NULL,
    summary           text NOT NULL,
    value             double precision,
    started_at        timestamptz NOT NULL,
    last_seen_at      timestamptz NOT NULL,
    resolved_at       timestamptz,
    resolved_by       text,                          -- a Slack user id when resolved by the button
    rearm_required    boolean NOT NULL DEFAULT false,-- resolved by hand: don't re-fire until the condition clears
    acknowledged_by   text,
    acknowledged_at   timestamptz,
    silenced_until    timestamptz,
    silenced_by       text,
    notified_at       timestamptz,                   -- when the firing message was queued (null: held or muted)
    last_reminder_at  timestamptz,
    message_outbox_id bigint REFERENCES outbox (id), -- the firing message, whose ts later updates target
    updated_at        timestamptz NOT NULL DEFAULT now()
);
-- At most one open alert per identity: the evaluator's upsert relies on it.
CREATE UNIQUE INDEX alerts_open_fingerprint_idx ON alerts (fingerprint) WHERE resolved_at IS NULL;
CREATE INDEX alerts_started_idx ON alerts (started_at);
CREATE INDEX alerts_resolved_idx ON alerts (resolved_at);

-- Every notification decided for an alert: the dedup record that makes restarts and replicas harmless.
CREATE TABLE alert_notifications (
    id         bigserial PRIMARY KEY,
    alert_id   bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    kind       text NOT NULL,                        -- fire | update | remind | resolve | ack | silence | unsilence
    outbox_id  bigint REFERENCES outbox (id),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_notifications_alert_idx ON alert_notifications (alert_id, created_at);

CREATE TABLE site_probes (
    id          bigserial PRIMARY KEY,
    url         text NOT NULL,
    checked_at  timestamptz NOT NULL,
    ok          boolean NOT NULL,
    status      integer,
    elapsed_ms  double precision,
    error       text
);
CREATE INDEX site_probes_checked_idx ON site_probes (checked_at);

-- Outbox messages may update an earlier message in place or reply in its thread.
ALTER TABLE outbox ADD COLUMN target_id bigint REFERENCES outbox (id);  -- the message updated or replied to
ALTER TABLE outbox ADD COLUMN op text NOT NULL DEFAULT 'post';          -- post | update | reply
