-- Events stored in the inbox wake the inbox workers (`salespulse apply`) of every replica at commit, as the outbox
-- wakes the delivery workers (0008): one notification per storing transaction, however many rows it stored.
CREATE FUNCTION inbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('salespulse_inbox', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER inbox_notify AFTER INSERT ON webhook_inbox FOR EACH STATEMENT EXECUTE FUNCTION inbox_notify();
