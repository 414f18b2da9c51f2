-- One failed payment attempt is one failure, however many of Stripe's events tell it: a bank debit's
-- checkout.session.async_payment_failed and its payment_intent.payment_failed name the same order within a second
-- or two. The failed charge, when an event names it, tells two attempts of one order apart (a customer's second
-- declined card); the index serves the intake's "is this attempt recorded already?" (queries/intake.py).

ALTER TABLE payment_failures ADD COLUMN charge_id text;
CREATE INDEX payment_failures_order_idx ON payment_failures (order_id, created_at) WHERE order_id IS NOT NULL;
