-- The foundation: orders, checkout sessions and webhook logs with the original guide's column names
-- (so its SQL runs unchanged), plus what exactly-once intake and delivery need.

-- One row per payment, however many Stripe event types told us about it.
CREATE TABLE orders (
    id                  text PRIMARY KEY,          -- the payment's preferred Stripe id (pi_…, cs_…, in_…, ch_…)
    payment_status      text NOT NULL,             -- completed | pending | failed | refunded
    amount_total        bigint,                    -- minor units of `currency`
    amount_refunded     bigint NOT NULL DEFAULT 0, -- cumulative, minor units
    currency            text,
    customer_email      text,
    customer_name       text,
    product_name        text,
    affiliate_id        text,
    checkout_session_id text,
    payment_intent_id   text,
    invoice_id          text,
    charge_id           text,
    failure_reason      text,
    livemode            boolean NOT NULL DEFAULT false,
    metadata            jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at          timestamptz NOT NULL,      -- when the payment happened (the guide's time axis)
    refunded_at         timestamptz,
    -- Stripe's `created` of the event that last set payment_status: an older event never overwrites it.
    status_at           timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT orders_status_known CHECK (payment_status IN ('completed', 'pending', 'failed', 'refunded'))
);
-- Time-window aggregates ("orders completed in the last hour / today") scan only this index's range.
CREATE INDEX orders_status_created_idx ON orders (payment_status, created_at)
    INCLUDE (amount_total, currency, customer_email);
CREATE INDEX orders_created_idx ON orders (created_at);
CREATE INDEX orders_refunded_idx ON orders (refunded_at) WHERE refunded_at IS NOT NULL;

-- Every Stripe id known to name an order's payment: how one payment seen via several types counts once.
CREATE TABLE payment_refs (
    ref      text PRIMARY KEY,
    order_id text NOT NULL REFERENCES orders (id) ON DELETE CASCADE
);
CREATE INDEX payment_refs_order_idx ON payment_refs (order_id);

-- Each failed payment attempt (a payment can fail several times and then succeed).
CREATE TABLE payment_failures (
    event_id       text PRIMARY KEY,
    order_id       text REFERENCES orders (id) ON DELETE SET NULL,
    amount         bigint,
    currency       text,
    customer_email text,
    reason         text,
    created_at     timestamptz NOT NULL
);
CREATE INDEX payment_failures_created_idx ON payment_failures (created_at);

CREATE TABLE disputes (
    id         text PRIMARY KEY,
    order_id   text REFERENCES orders (id) ON DELETE SET NULL,
    charge_id  text,
    amount     bigint,
    currency   text,
    reason     text,
    status     text,
    created_at timestamptz NOT NULL
);
CREATE INDEX disputes_created_idx ON disputes (created_at);

CREATE TABLE checkout_sessions (
    id             text PRIMARY KEY,
    status         text NOT NULL,                  -- pending | completed | expired | failed
    amount_total   bigint,
    currency       text,
    customer_email text,
    metadata       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at     timestamptz NOT NULL,           -- when the customer started the checkout
    completed_at   timestamptz,
    status_at      timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX checkout_sessions_created_idx ON checkout_sessions (created_at) INCLUDE (status);
CREATE INDEX checkout_sessions_pending_idx ON checkout_sessions (created_at) WHERE status = 'pending';

-- Every webhook received, keyed by the sender's event id: a redelivery is a no-op.
CREATE TABLE webhook_logs (
    id          bigserial PRIMARY KEY,
    source      text NOT NULL DEFAULT 'stripe',
    event_id    text NOT NULL,
    event_type  text NOT NULL,
    status      text NOT NULL,                     -- processed | ignored | error
    last_error  text,
    livemode    boolean NOT NULL DEFAULT false,
    payload     jsonb NOT NULL,
    event_created_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT webhook_logs_event_unique UNIQUE (source, event_id)
);
CREATE INDEX webhook_logs_status_updated_idx ON webhook_logs (status, updated_at);
CREATE INDEX webhook_logs_created_idx ON webhook_logs (created_at);

-- Messages to deliver to Slack: written in the same transaction as the data they describe, drained by
-- the delivery worker with FOR UPDATE SKIP LOCKED, so nothing is lost on a crash and nothing is sent twice.
CREATE TABLE outbox (
    id            bigserial PRIMARY KEY,
    dedupe_key    text NOT NULL UNIQUE,            -- e.g. sale:<order id>: a payment pings once
    channel       text NOT NULL,                   -- logical channel: sales | alerts | reports
    kind          text NOT NULL,                   -- sale | failure | refund | dispute | burst | …
    payload       jsonb NOT NULL,                  -- {"text", "blocks", …}
    amount        bigint,                          -- sale pings: what a coalesced summary adds up
    currency      text,
    status        text NOT NULL DEFAULT 'pending', -- pending | delivered | coalesced | failed
    attempts      integer NOT NULL DEFAULT 0,
    available_at  timestamptz NOT NULL DEFAULT now(),
    created_at    timestamptz NOT NULL DEFAULT now(),
    delivered_at  timestamptz,
    coalesced_into bigint REFERENCES outbox (id),
    slack_channel text,                            -- what Slack answered, for later chat.update
    slack_ts      text,
    last_error    text
);
CREATE INDEX outbox_pending_idx ON outbox (channel, id) WHERE status = 'pending';
CREATE INDEX outbox_failed_idx ON outbox (delivered_at) WHERE status = 'failed';

-- One row per logical channel: its lock serialises posting across replicas and holds the pace
-- (Slack allows about one message per second per channel, and 429s say when to come back).
CREATE TABLE channel_pace (
    channel      text PRIMARY KEY,
    next_post_at timestamptz NOT NULL DEFAULT now()
);

-- Slack delivery problems, for /health (permanent errors and rate limits alike).
CREATE TABLE delivery_errors (
    id         bigserial PRIMARY KEY,
    channel    text NOT NULL,
    error      text NOT NULL,
    permanent  boolean NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX delivery_errors_created_idx ON delivery_errors (created_at);
