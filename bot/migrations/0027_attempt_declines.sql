-- Why an invoice's payment failed: invoice.payment_failed says only that it did; the bank's reason ("Your card has
-- insufficient funds.") comes on its PaymentIntent's payment_intent.payment_failed, which records no failure of
-- its own (0026). The two arrive in either order, so the PaymentIntent's reason is kept here for the invoice's
-- failure to take (bot/intake/declines.py), and a failure already recorded is told which invoice and customer it
-- was for, to be found when its reason comes second. A decline is of use for ATTEMPT_WINDOW: kept two days after it
-- was received (not after its event: a backfill's old events must still find each other).
CREATE TABLE attempt_declines (
    event_id    text PRIMARY KEY,
    invoice_id  text,
    customer_id text,
    amount      bigint,
    currency    text,
    reason      text NOT NULL,
    created_at  timestamptz NOT NULL,
    kept_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX attempt_declines_created_idx ON attempt_declines (created_at);
CREATE INDEX attempt_declines_kept_idx ON attempt_declines (kept_at);

ALTER TABLE payment_failures ADD COLUMN invoice_id text, ADD COLUMN customer_id text;
