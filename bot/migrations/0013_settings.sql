-- Settings changed from Slack (the Settings view): one row per overridden setting, over the environment and
-- ALERT_RULES_FILE, which stay the defaults. Every change is audited in the same transaction, and its commit
-- notifies every replica (bot/settings/live.py LISTENs), which reloads the overrides within a second.

CREATE TABLE settings_overrides (
    key        text        PRIMARY KEY,
    value      jsonb       NOT NULL,
    updated_by text        NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE settings_audit (
    id      bigserial   PRIMARY KEY,
    at      timestamptz NOT NULL,
    user_id text        NOT NULL,
    key     text        NOT NULL,
    before  jsonb,      -- NULL: the default (environment or rules file) was in force
    after   jsonb       -- NULL: back to the default
);

CREATE INDEX settings_audit_at ON settings_audit (at DESC, id DESC);

CREATE FUNCTION settings_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('salespulse_settings', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER settings_notify AFTER INSERT OR UPDATE OR DELETE ON settings_overrides
    FOR EACH STATEMENT EXECUTE FUNCTION settings_notify();
