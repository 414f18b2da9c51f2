-- The outbox notification (0008) names the channel: one per channel the transaction queued deliverable messages
-- for (identical notifications of a transaction are still folded into one). A delivery worker already waiting for
-- that channel's next slot then need not look at the outbox at all (bot/delivery/worker.py): during a burst every
-- batch of sales notifies, some forty times a second, and each look cost half a dozen statements. A burst's
-- summary, stored as delivered, announces nothing.

CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('salespulse_outbox', q.channel)
       FROM (SELECT DISTINCT channel FROM queued WHERE status = 'pending') AS q;
    RETURN NULL;
END
$$;

DROP TRIGGER outbox_notify ON outbox;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox REFERENCING NEW TABLE AS queued
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
