-- Discounts Stripe sends as ids only. From 2025-03-31.basil on, a subscription's `discounts` (and each item's) are
-- Discount ids in webhooks, so the MRR stored at intake (0015) is before them. Such a snapshot keeps what its MRR
-- is made of (`pricing`: the items and discount refs; `before_pricing`: the same for before_mrr) and is marked
-- 'pending'; with STRIPE_API_KEY, bot/stripe/discount_job.py reads the Discounts (cached per id in `discounts`),
-- recomputes mrr and before_mrr, and marks it 'applied' — or 'missing' when a discount was no longer on the
-- subscription when read (its MRR stays before that discount). NULL: nothing to resolve (no discount, or the
-- event carried its terms). Without a key nothing is read and /sales says how many MRRs are before discounts.
ALTER TABLE subscription_events
    ADD COLUMN pricing        jsonb,
    ADD COLUMN before_pricing jsonb,
    ADD COLUMN discounts      text CHECK (discounts IN ('pending', 'applied', 'missing'));
CREATE INDEX subscription_events_discounts_unread ON subscription_events (discounts, subscription_id)
    WHERE discounts IN ('pending', 'missing');

-- A Discount's terms as read from Stripe: its coupon's percent_off / amount_off (+ currency) / duration and the
-- Discount's `end`. terms NULL: the Discount was not on its subscription when read (removed since).
CREATE TABLE discounts (
    id      text PRIMARY KEY,
    terms   jsonb,
    read_at timestamptz NOT NULL
);

-- Subscriptions whose pending snapshots are to be read: a lease per batch, as settlement_fetches (0014).
CREATE TABLE discount_fetches (
    subscription_id text PRIMARY KEY,
    due_at          timestamptz NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    queued_at       timestamptz NOT NULL
);
CREATE INDEX discount_fetches_due_idx ON discount_fetches (due_at);
