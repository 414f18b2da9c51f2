-- Disputes the previous release stored before their sale kept their charge only, so 0038 gave them refs = [charge]
-- and a sale that names only its PaymentIntent (a Checkout session) or its invoice (a basil renewal) cannot find them.
-- Their own events, still in webhook_logs (bodies are kept 35 days), name the PaymentIntent too: it joins their refs,
-- and those whose order is known by now are linked, as queries/intake.py LINK_DISPUTES links them (first ref, sorted).
-- One pass over the dispute events; row locks only, on the disputes still without an order.
WITH named AS (
    SELECT w.payload #>> '{data,object,id}' AS dispute_id, w.payload #>> '{data,object,payment_intent}' AS ref
      FROM webhook_logs AS w
     WHERE w.event_type LIKE 'charge.dispute.%' AND w.payload #>> '{data,object,payment_intent}' IS NOT NULL
), widened AS (
    SELECT u.id, (SELECT jsonb_agg(r ORDER BY r COLLATE "C")
                    FROM (SELECT jsonb_array_elements_text(coalesce(u.refs, '[]')) AS r
                          UNION
                          SELECT n.ref FROM named AS n WHERE n.dispute_id = u.id) AS x) AS refs
      FROM disputes AS u
     WHERE u.order_id IS NULL AND EXISTS (SELECT FROM named AS n WHERE n.dispute_id = u.id)
)
UPDATE disputes AS d SET refs = w.refs FROM widened AS w WHERE d.id = w.id;

UPDATE disputes AS d
   SET order_id = (SELECT p.order_id FROM payment_refs AS p
                    WHERE p.ref IN (SELECT jsonb_array_elements_text(d.refs))
                    ORDER BY p.ref COLLATE "C" LIMIT 1)
 WHERE d.order_id IS NULL
   AND EXISTS (SELECT FROM payment_refs AS p WHERE p.ref IN (SELECT jsonb_array_elements_text(d.refs)));
