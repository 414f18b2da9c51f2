-- A 'linked' order holds the ids (and the customer) that a LINK event (charge.succeeded, invoice_payment.paid)
-- tied together before any event counted the money: the sale that follows takes the row over. It is never a
-- sale: every total counts 'completed' only, and the rollup triggers skip it. (Numbered 0012: 0010 and 0011
-- are taken on other branches.)
ALTER TABLE orders DROP CONSTRAINT orders_status_known;
ALTER TABLE orders ADD CONSTRAINT orders_status_known
    CHECK (payment_status IN ('completed', 'pending', 'failed', 'refunded', 'linked'));
