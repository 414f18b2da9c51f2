-- Every transaction that queues messages wakes the delivery workers of every replica: NOTIFY is delivered at
-- commit (never before the rows are visible, never for a rolled-back transaction), and identical
-- notifications of one transaction are folded into one, so a statement-level trigger with an empty payload
-- costs one notification per enqueuing transaction, however many rows it inserted. Workers LISTEN on a
-- connection of their own (bot/delivery/listener.py) and still poll now and then in case one is missed.

CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('salespulse_outbox', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
