-- A refusal retried for hours (a channel held, retried every 30 s) was a row per retry: 2,880 a day for each
-- channel, kept for ever. A channel's error repeated within the hour is now counted on its row (repeats, last_at:
-- a row spans an hour at most, so "since" windows stay exact to the hour), and rows older than 90 days go, a few at a
-- time, as new ones come (queries/outbox.py RECORD_ERROR).
ALTER TABLE delivery_errors ADD COLUMN repeats integer NOT NULL DEFAULT 1, ADD COLUMN last_at timestamptz;
CREATE INDEX delivery_errors_channel_idx ON delivery_errors (channel, id);

-- When a message that failed and waits for a retry first became due: its available_at before the first retry moved
-- it on (a renewal held an hour, a sale settling). /health and the delivery_stuck rule count how long delivery has
-- been failing from there, not from when the message was queued (queries/health.py).
ALTER TABLE outbox ADD COLUMN first_due_at timestamptz;
