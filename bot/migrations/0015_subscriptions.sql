-- Subscriptions and their MRR (issue 15). `subscriptions` holds each subscription as its newest Stripe event
-- left it: an older event arriving late never overwrites it (last_event_at, last_event_rank). 
-- `subscription_events` keeps one snapshot per Stripe event (its counted MRR at that moment), keyed by the event
-- id: a redelivery adds nothing, and since MRR changes are read as the difference between consecutive snapshots
-- in time order (not arrival order), any arrival order of the same events gives the same ledger. MRR is in minor
-- units of the subscription's own currency (never converted here); a trialing, incomplete, paused or ended
-- subscription counts 0.
CREATE TABLE subscriptions (
    id                   text PRIMARY KEY,
    customer             text,
    status               text        NOT NULL,
    mrr                  bigint      NOT NULL DEFAULT 0 CHECK (mrr >= 0),
    currency             text        NOT NULL,
    plan                 text,
    cancel_at_period_end boolean     NOT NULL DEFAULT false,
    cancel_at            timestamptz,
    current_period_end   timestamptz,
    started_at           timestamptz,
    canceled_at          timestamptz,
    ended_at             timestamptz,
    livemode             boolean     NOT NULL DEFAULT false,
    last_event_id        text        NOT NULL,
    last_event_at        timestamptz NOT NULL,
    last_event_rank      smallint    NOT NULL,
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscriptions_counted ON subscriptions (currency) WHERE mrr > 0;

-- rank orders events of one second: created (0) before updated (1) before deleted (2). before_mrr is what the
-- event itself says the MRR was just before it (previous_attributes; a deletion's items), used when the ledger
-- holds nothing earlier: a subscription first seen after install then moves from what it was, not from 0.
CREATE TABLE subscription_events (
    event_id        text PRIMARY KEY,
    subscription_id text        NOT NULL,
    at              timestamptz NOT NULL,
    rank            smallint    NOT NULL,
    status          text        NOT NULL,
    mrr             bigint      NOT NULL CHECK (mrr >= 0),
    currency        text        NOT NULL,
    plan            text,
    before_mrr      bigint      CHECK (before_mrr >= 0)
);
-- Each snapshot's predecessor, by index (queries/mrr.py).
CREATE INDEX subscription_events_by_sub ON subscription_events (subscription_id, at, rank, event_id);
CREATE INDEX subscription_events_at ON subscription_events (at);

-- Invoices that renewed a subscription (billing_reason subscription_cycle): their order's sale ping is quieter
-- (SUBSCRIPTION_RENEWALS), whichever batch, and whichever of the payment's events, last touches that ping.
CREATE TABLE renewal_invoices (
    invoice_id text PRIMARY KEY,
    seen_at    timestamptz NOT NULL DEFAULT now()
);
