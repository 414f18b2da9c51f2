-- Webhooks received while every intake writer is busy: the sender gets its 2xx once the raw event is committed
-- here (one statement for everything waiting), and a writer applies it soon after in a large batch, deleting the
-- row in the transaction that applies it. A row left behind by a replica that stopped is applied by another.
CREATE TABLE webhook_inbox (
    id          bigserial PRIMARY KEY,
    source      text NOT NULL,
    via         text NOT NULL,
    event_id    text NOT NULL,
    body        text NOT NULL,  -- as received; parsed again only when another process applies it
    received_at timestamptz NOT NULL DEFAULT now()
) WITH (autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 5000);  -- a queue: vacuum by rows
