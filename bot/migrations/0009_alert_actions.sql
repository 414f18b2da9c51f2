-- Every click on an alert's buttons, allowed or not: who, what, when, from where (issue 13's audit trail).
CREATE TABLE alert_actions (
    id             bigserial PRIMARY KEY,
    alert_id       bigint      NOT NULL,   -- no foreign key: refused clicks may name alerts that never existed
    user_id        text        NOT NULL,
    action         text        NOT NULL CHECK (action IN ('ack', 'silence', 'resolve')),
    outcome        text        NOT NULL CHECK (outcome IN ('applied', 'refused', 'stale')),
    silenced_until timestamptz,
    surface        text        NOT NULL,   -- slack | home | feed
    at             timestamptz NOT NULL
);
CREATE INDEX alert_actions_alert ON alert_actions (alert_id, at);
