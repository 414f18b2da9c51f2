-- Exactly-once delivery across crashes: an attempt is recorded (committed on its own) before the HTTP call to
-- Slack, so a message whose fate is unknown (the process died, or the call timed out) is looked up in Slack
-- by the id in its metadata before it is sent again. No foreign key: the outbox row is locked FOR UPDATE
-- while the attempt is written from another connection.
CREATE TABLE delivery_attempts (
    outbox_id  bigint PRIMARY KEY,
    channel    text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now()
);

-- The Slack id of each logical channel, learned from the first successful post (history lookups need it).
ALTER TABLE channel_pace ADD COLUMN slack_channel_id text;
