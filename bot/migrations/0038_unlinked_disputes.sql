-- Two gaps of the intake's "any order of arrival" rule (bot/intake/disputes.py, bot/intake/refunds.py).
--
-- A dispute that arrives before its sale is stored with no order. It now keeps the ids of its payment (`refs`, a
-- JSON array of ch_/pi_/in_ ids, sorted), and the statement that gives one of them an order links it
-- (queries/intake.py LINK_DISPUTES). The index holds only disputes still waiting, so a batch of new sales probes an
-- index that is all but empty. Disputes stored before this migration know their charge only; those whose order is
-- known by now are linked here.
ALTER TABLE disputes ADD COLUMN refs jsonb;
UPDATE disputes SET refs = jsonb_build_array(charge_id) WHERE order_id IS NULL AND charge_id IS NOT NULL;
UPDATE disputes AS d SET order_id = p.order_id
  FROM payment_refs AS p
 WHERE d.order_id IS NULL AND p.ref = d.charge_id;
CREATE INDEX disputes_unlinked_refs_idx ON disputes USING gin (refs) WHERE order_id IS NULL;

-- A refund kept on a placeholder order ('linked': its sale has not arrived) counts nothing until the sale comes:
-- its facts stay in refund_ledger (0037), and amount_refunded and refunded_at, which the rollups and /sales read, are
-- derived once the order is paid. Placeholders stored before: their refund moved into the ledger (one kept before
-- 0037 reads as one charge.refunded of its amount, as bot/intake/refunds.py reads it), and out of the rollups (the
-- triggers of 0020/0023 take the old rows out).
UPDATE orders
   SET refund_ledger = CASE WHEN refund_ledger ? 'charges' OR amount_refunded = 0 THEN refund_ledger
                            ELSE refund_ledger || jsonb_build_object('charges', jsonb_build_array(jsonb_build_array(
                                 amount_refunded,
                                 (extract(epoch FROM coalesce(refunded_at, status_at)) * 1000000)::bigint))) END,
       amount_refunded = 0, refunded_at = NULL
 WHERE payment_status = 'linked' AND (amount_refunded <> 0 OR refunded_at IS NOT NULL);
