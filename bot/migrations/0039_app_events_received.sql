-- When the bot received each app event, by its own clock. Alerts and /errors' "recent" counts go by it, so an
-- event dated ahead by a skewed client clock, or reported late with the time it happened, still counts when it
-- arrives; history (retention, the order of the lists) keeps occurred_at, the sender's time.
ALTER TABLE app_events ADD COLUMN received_at timestamptz;
UPDATE app_events SET received_at = created_at;  -- created_at was stamped on arrival
ALTER TABLE app_events ALTER COLUMN received_at SET NOT NULL,
                       ALTER COLUMN received_at SET DEFAULT now();
CREATE INDEX app_events_kind_received_idx ON app_events (kind, received_at);
