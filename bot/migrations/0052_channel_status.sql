-- What the newest replica to learn it knows of each configured Slack channel (bot/delivery/channels.py Membership):
-- each replica keeps its own copy in memory and writes here only when what it learned differs, so /health on any
-- replica says what the last post, join or look-up on any of them found, not what this one saw last. Keyed by the
-- configured value too: a channel configured anew starts unknown, and going back to the old one finds what was known.
CREATE TABLE channel_status (
    logical    text        NOT NULL,  -- sales, alerts, reports
    configured text        NOT NULL,  -- SLACK_*_CHANNEL as set: a name or an id
    membership text        NOT NULL,
    channel_id text,
    name       text,
    error      text,
    learned_at timestamptz NOT NULL,  -- the database's clock: one clock for every replica
    PRIMARY KEY (logical, configured)
);

-- Every replica follows the others' news (bot/delivery/channel_store.py), so what it calls a change is judged against
-- the newest knowledge, not its own old copy.
CREATE FUNCTION channel_status_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('salespulse_channel_status', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER channel_status_notify AFTER INSERT OR UPDATE OR DELETE ON channel_status
    FOR EACH STATEMENT EXECUTE FUNCTION channel_status_notify();
