-- One failed payment attempt is one failure, however many of Stripe's events tell it: a bank debit's
-- checkout.session.async_payment_failed and its payment_intent.payment_failed name the same order within a second
-- or two. The failed charge, when both events name one, tells two attempts of one order apart (a customer's second
-- declined card); when one does not, only events of different types are one attempt (a failed 3-D Secure check,
-- which has no charge, then a declined card are two PaymentIntent failures: two attempts). The index serves the
-- intake's "is this attempt recorded already?" (queries/intake.py INSERT_FAILURES).

ALTER TABLE payment_failures ADD COLUMN charge_id text, ADD COLUMN event_type text;
CREATE INDEX payment_failures_order_idx ON payment_failures (order_id, created_at) WHERE order_id IS NOT NULL;
