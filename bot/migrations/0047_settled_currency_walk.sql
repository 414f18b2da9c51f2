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

-- Orders given up on before this migration as settled in another currency than the store's kept the reason only
-- (settlement_fetches due 'infinity', "settled in EUR, not the store currency USD"; no settled_currency, nothing set
-- aside). Their settled currency is taken from that reason, upper-case as bot/stripe/settle.py stores it, so a walk
-- for that currency, once it is the store's, reads them again (queries/settled_currency.py STEP: set aside in the
-- new store currency, nothing set aside, due again), and the daily retry keeps leaving them meanwhile.
UPDATE orders AS o
   SET settled_currency = upper(substring(f.last_error FROM '^settled in ([A-Za-z]{3}), not the store currency'))
  FROM settlement_fetches AS f
 WHERE f.order_id = o.id AND f.due_at = 'infinity' AND f.last_error LIKE 'settled in %, not the store currency %'
   AND o.settled_amount IS NULL AND o.settled_currency IS NULL
   AND f.last_error ~ '^settled in [A-Za-z]{3}, not the store currency';
