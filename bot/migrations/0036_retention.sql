-- Data retention (bot/retention/): once a day, on one replica, the bodies of old webhook_logs rows and the payloads
-- of old settled outbox messages are emptied ('{}'; the rows stay: they dedupe redeliveries and are what edits
-- target), and old site probes and app events are deleted. One row: the store's local day of the last run (a
-- replica sets it only if it is earlier: the first writer of the day runs, as reports are recorded once a day),
-- and how far each walk has come. The walks go by id (the primary keys, no new index to slow the intake) up to the
-- first row too young, and a mark never passes a message still pending, so every row at or below a mark has been
-- dealt with and a run does not read again what an earlier one finished.
CREATE TABLE retention_state (
    id                text PRIMARY KEY DEFAULT 'retention' CHECK (id = 'retention'),
    ran_on            date,                        -- the store's local day of the last run (claimed at its start)
    started_at        timestamptz,
    finished_at       timestamptz,                 -- NULL while running, or when the run died (the next one goes on)
    webhook_logs_upto bigint NOT NULL DEFAULT 0,   -- every webhook_logs row with id <= this has its body emptied
    outbox_upto       bigint NOT NULL DEFAULT 0    -- every outbox row with id <= this is settled and pruned
);
INSERT INTO retention_state DEFAULT VALUES;
