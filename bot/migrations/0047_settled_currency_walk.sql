-- Settled figures in one currency only. The rollups sum orders.settled_amount, fee and settled_refunded whatever
-- their settled_currency, and the answers read those sums as amounts in the store currency: so an order's figures
-- stay in those columns only while they are in the store currency. Figures read in another currency are set aside
-- on the order (settled_aside, summed nowhere; settled_currency says which) and the order counts as not converted.
--
-- When the store currency changes (STORE_CURRENCY set or changed, or the account's default currency read for the
-- first time or changed), the fees job walks every order, newest first, a thousand per step (bot/stripe/settle_walk.py):
-- figures in another currency are set aside, and figures set aside in what is now the store currency come back (read
-- again from Stripe when a refund or dispute came since). One row: the currency the last walk was for and how far it
-- has come; a step locks it (FOR UPDATE SKIP LOCKED), so one replica steps at a time, and a restart goes on from
-- there. Once finished, a run of the job reads this row and nothing else.
--
-- A nullable column without a default: no table rewrite, the lock is held for an instant.
ALTER TABLE orders ADD COLUMN settled_aside jsonb;  -- {amount, fee, refunded, net, balance_transaction, at,
                                                    --  refund_basis, disputes}: the 0014 figures, in settled_currency

CREATE TABLE settled_currency_walk (
    id          text PRIMARY KEY DEFAULT 'walk' CHECK (id = 'walk'),
    currency    text,         -- the store currency walked for; NULL: never walked
    before_at   timestamptz,  -- the walk goes on with the orders before (created_at, id) = (before_at, before_id);
    before_id   text,         -- NULL: from the newest
    started_at  timestamptz,
    finished_at timestamptz   -- NULL while walking
);
INSERT INTO settled_currency_walk DEFAULT VALUES;
