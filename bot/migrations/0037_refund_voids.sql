-- A refund can fail or be canceled after charge.refunded counted it (a closed card, a bank that returns it; Stripe
-- sends charge.refund.updated, refund.failed or refund.updated with status failed|canceled) and the money comes back
-- to the account: https://docs.stripe.com/refunds#failed-refunds. The intake keeps what Stripe said about an
-- order's refunds, so amount_refunded, refunded_at and the 'refunded' status can be derived again in any order of
-- arrival (bot/intake/refunds.py):
--   {"charges": [[amount_refunded, at µs], …]  each charge.refunded's cumulative amount and time,
--    "voids": {"re_…": [amount, refund created µs, failed or canceled at µs], …}}
-- '{}' (every row before this migration) reads as one charge.refunded of the stored amount_refunded.
ALTER TABLE orders ADD COLUMN refund_ledger jsonb NOT NULL DEFAULT '{}';

-- When the fees job last tried an order's balance transactions: an order given up on (due_at 'infinity') is tried
-- once more a day later at the daily reconciliation, never twice a day whatever the number of replicas
-- (queries/settlements.py REVIVE). NULL (rows before this migration) reads as queued_at.
ALTER TABLE settlement_fetches ADD COLUMN tried_at timestamptz;
