-- The last webhook's time (queries/health.py LAST_WEBHOOK_AT, queries/stripe_sync.py LAST_STRIPE_WEBHOOK), read by
-- /health, the JSON API and every App Home refresh. A store run by polling alone stores every event via
-- 'events_api': walking webhook_logs_created_idx back for a 'webhook' row read the whole table (82 ms at 1 M rows,
-- 7 M a year). Only webhook rows here, so an empty index answers at once. Built like the earlier indexes, in the
-- migration's transaction (no CONCURRENTLY there): writes to webhook_logs wait while it builds, about 0.4 s per
-- million webhook rows, 0.13 s per million polled ones (measured, PostgreSQL 15); the intake's inbox answers meanwhile.
CREATE INDEX webhook_logs_webhook_created_idx ON webhook_logs (created_at) WHERE via = 'webhook';

-- Retention empties a day's bodies (bot/retention): each leaves a dead row version carrying its body (~2 KB, inline
-- with lz4) until autovacuum visits the table. By default it waits for 20% of the table to be dead, and these tables
-- only grow (rows are kept, only their heavy parts go): a year in, 73 days of emptied bodies waited. By rows instead,
-- as webhook_inbox does (0018): webhook_logs is otherwise insert-only, so 1,000 dead rows (~2 MB of bodies) is about
-- one vacuum after each daily run for a store of a few hundred orders a day or more, and a smaller one's few MB wait
-- a few days. The outbox also turns over a row version per delivery, so a vacuum every 5,000 (~10 MB of payloads)
-- keeps it to a few a day on a busy store. Autovacuum, not a VACUUM in the job: it is throttled, and gives way to a
-- migration's lock, which a replica starting mid-run would otherwise wait for. Their TOAST tables follow them.
ALTER TABLE webhook_logs SET (autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 1000);
ALTER TABLE outbox SET (autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 5000);
