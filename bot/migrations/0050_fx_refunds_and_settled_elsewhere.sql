-- Two store-currency figures the rollups got wrong for orders charged in another currency.
--
-- A fully refunded order counted its fee only, its gross and its refund taken to cancel out. In the charge's currency
-- they do; in the store currency they do not: Stripe converts a refund at the rate of the day it is made, so a €45.00
-- sale settled at $48.71 and refunded a week later takes back $49.90. orders.net says −$2.90 (48.71 − 1.71 − 49.90);
-- the rollups said −$1.71. A refunded order's deduction now also holds settled_refunded − settled_amount (0 when
-- both were at one rate, as for an order in the store currency), so the store's net is Σ orders.net.
--
-- An order whose figures were read in another currency than the store's is given up on (its figures set aside in
-- orders.settled_aside, 0047), yet it counted as "not converted yet" and its fees as "still to come" forever.
-- `aside_orders` and `aside_revenue` count the completed orders created in the bucket whose figures are set aside
-- (settled_amount NULL, settled_aside not) and their amount_total in their own currency, so the answers name them
-- apart ("€45.00 settled in another currency, not counted") from the same rollups, with no scan of the orders.
--
-- Nothing writes orders while this runs: a write already under way has finished (its trigger ran the functions
-- before these), so the backfill below sees it; a later one waits and runs the new functions.
LOCK TABLE orders IN SHARE MODE;

ALTER TABLE sales_rollups
    ADD COLUMN aside_orders  bigint NOT NULL DEFAULT 0,  -- completed orders whose figures are in another currency
    ADD COLUMN aside_revenue bigint NOT NULL DEFAULT 0;  -- their amount_total, in `currency`
ALTER TABLE order_rollups
    ADD COLUMN aside_orders  bigint NOT NULL DEFAULT 0,
    ADD COLUMN aside_revenue bigint NOT NULL DEFAULT 0;

-- 0020's function: a refunded order's exchange difference deducted, the orders set aside counted.
CREATE OR REPLACE FUNCTION order_rollups_change(old_rows orders[], new_rows orders[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    WITH changed AS (
        SELECT -1 AS sign, * FROM unnest(old_rows) UNION ALL SELECT 1, * FROM unnest(new_rows)
    ), parts AS (
        SELECT created_at, currency, sign AS orders, sign * coalesce(amount_total, 0) AS revenue,
               CASE WHEN settled_amount IS NULL THEN 0 ELSE sign END AS settled_orders,
               CASE WHEN settled_amount IS NULL THEN 0 ELSE sign * coalesce(amount_total, 0) END AS settled_revenue,
               sign * coalesce(settled_amount, 0) AS settled, sign * coalesce(fee, 0) AS fees,
               sign * coalesce(settled_refunded, 0) AS deducted,
               CASE WHEN settled_amount IS NULL AND settled_aside IS NOT NULL THEN sign ELSE 0 END AS aside_orders,
               CASE WHEN settled_amount IS NULL AND settled_aside IS NOT NULL
                    THEN sign * coalesce(amount_total, 0) ELSE 0 END AS aside_revenue
          FROM changed WHERE payment_status = 'completed'
        UNION ALL
        SELECT created_at, currency, 0, 0, 0, 0, 0, sign * fee,
               sign * (coalesce(settled_refunded, 0) - coalesce(settled_amount, 0)), 0, 0
          FROM changed WHERE payment_status = 'refunded' AND fee IS NOT NULL
    )
    INSERT INTO order_rollups AS r (bucket, currency, orders, revenue, settled_orders, settled_revenue,
                                    settled, fees, deducted, aside_orders, aside_revenue)
    SELECT order_rollup_bucket(created_at), coalesce(currency, ''), sum(orders), sum(revenue),
           sum(settled_orders), sum(settled_revenue), sum(settled), sum(fees), sum(deducted), sum(aside_orders),
           sum(aside_revenue)
      FROM parts
     GROUP BY 1, 2
    HAVING sum(orders) <> 0 OR sum(revenue) <> 0 OR sum(settled_orders) <> 0 OR sum(settled) <> 0
        OR sum(fees) <> 0 OR sum(deducted) <> 0 OR sum(aside_orders) <> 0 OR sum(aside_revenue) <> 0
     ORDER BY 1, 2
    ON CONFLICT (bucket, currency) DO UPDATE
       SET orders = r.orders + EXCLUDED.orders, revenue = r.revenue + EXCLUDED.revenue,
           settled_orders = r.settled_orders + EXCLUDED.settled_orders,
           settled_revenue = r.settled_revenue + EXCLUDED.settled_revenue,
           settled = r.settled + EXCLUDED.settled, fees = r.fees + EXCLUDED.fees,
           deducted = r.deducted + EXCLUDED.deducted, aside_orders = r.aside_orders + EXCLUDED.aside_orders,
           aside_revenue = r.aside_revenue + EXCLUDED.aside_revenue;
END $$;

-- 0045's function, the same two changes.
CREATE OR REPLACE FUNCTION sales_rollups_change(old_rows orders[], new_rows orders[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    gone timestamptz[];
BEGIN
    WITH changed AS (
        SELECT -1 AS sign, * FROM unnest(old_rows) UNION ALL SELECT 1, * FROM unnest(new_rows)
    ), parts AS (
        SELECT created_at AS at, coalesce(currency, '') AS currency, sign AS orders,
               sign * coalesce(amount_total, 0) AS revenue,
               CASE WHEN settled_amount IS NULL THEN 0 ELSE sign END AS settled_orders,
               CASE WHEN settled_amount IS NULL THEN 0 ELSE sign * coalesce(amount_total, 0) END AS settled_revenue,
               sign * coalesce(settled_amount, 0) AS settled, sign * coalesce(fee, 0) AS fees,
               sign * coalesce(settled_refunded, 0) AS deducted,
               CASE WHEN customer_email IS NULL THEN sign ELSE 0 END AS no_email,
               CASE WHEN settled_amount IS NULL AND settled_aside IS NOT NULL THEN sign ELSE 0 END AS aside_orders,
               CASE WHEN settled_amount IS NULL AND settled_aside IS NOT NULL
                    THEN sign * coalesce(amount_total, 0) ELSE 0 END AS aside_revenue
          FROM changed WHERE payment_status = 'completed'
        UNION ALL
        SELECT created_at, coalesce(currency, ''), 0, 0, 0, 0, 0, sign * fee,
               sign * (coalesce(settled_refunded, 0) - coalesce(settled_amount, 0)), 0, 0, 0
          FROM changed WHERE payment_status = 'refunded' AND fee IS NOT NULL
    )
    INSERT INTO sales_rollups AS r (level, bucket, currency, orders, revenue, refunds, refunded,
                                    settled_orders, settled_revenue, settled, fees, deducted, no_email,
                                    aside_orders, aside_revenue)
    SELECT l.level, date_bin(l.width, p.at, 'epoch'), p.currency,
           sum(p.orders), sum(p.revenue), 0, 0,
           sum(p.settled_orders), sum(p.settled_revenue), sum(p.settled), sum(p.fees), sum(p.deducted),
           sum(p.no_email), sum(p.aside_orders), sum(p.aside_revenue)
      FROM parts AS p CROSS JOIN (VALUES ('day', interval '1 day'), ('hour', interval '1 hour')) AS l(level, width)
     GROUP BY 1, 2, 3
    HAVING sum(p.orders) <> 0 OR sum(p.revenue) <> 0
        OR sum(p.settled_orders) <> 0 OR sum(p.settled) <> 0 OR sum(p.fees) <> 0 OR sum(p.deducted) <> 0
        OR sum(p.no_email) <> 0 OR sum(p.aside_orders) <> 0 OR sum(p.aside_revenue) <> 0
     ORDER BY 1, 2, 3
    ON CONFLICT (level, bucket, currency) DO UPDATE
       SET orders = r.orders + EXCLUDED.orders, revenue = r.revenue + EXCLUDED.revenue,
           settled_orders = r.settled_orders + EXCLUDED.settled_orders,
           settled_revenue = r.settled_revenue + EXCLUDED.settled_revenue,
           settled = r.settled + EXCLUDED.settled, fees = r.fees + EXCLUDED.fees,
           deducted = r.deducted + EXCLUDED.deducted, no_email = r.no_email + EXCLUDED.no_email,
           aside_orders = r.aside_orders + EXCLUDED.aside_orders,
           aside_revenue = r.aside_revenue + EXCLUDED.aside_revenue;
    IF EXISTS (SELECT FROM unnest(new_rows) AS n WHERE n.refund_ledger <> '{}' OR n.refunded_at IS NOT NULL)
       OR EXISTS (SELECT FROM unnest(old_rows) AS o WHERE o.refund_ledger <> '{}' OR o.refunded_at IS NOT NULL) THEN
        PERFORM refund_steps_change(old_rows, new_rows);
    END IF;
    WITH counted AS (
        SELECT -1 AS sign, id, date_bin('1 hour', created_at, 'epoch') AS hour, customer_email FROM unnest(old_rows)
         WHERE payment_status = 'completed' AND customer_email IS NOT NULL
        UNION ALL
        SELECT 1, id, date_bin('1 hour', created_at, 'epoch'), customer_email FROM unnest(new_rows)
         WHERE payment_status = 'completed' AND customer_email IS NOT NULL
    ), added AS (
        SELECT id, hour, customer_email FROM counted WHERE sign = 1
        EXCEPT SELECT id, hour, customer_email FROM counted WHERE sign = -1
    )
    INSERT INTO customer_sketches AS s (level, bucket, sketch)
    SELECT l.level, date_bin(l.width, a.hour, 'epoch'),
           customer_sketch_of(array_agg(DISTINCT customer_sketch_bit(a.customer_email)))
      FROM added AS a CROSS JOIN (VALUES ('day', interval '1 day'), ('hour', interval '1 hour')) AS l(level, width)
     GROUP BY 1, 2
     ORDER BY 1, 2
    ON CONFLICT (level, bucket) DO UPDATE SET sketch = s.sketch | EXCLUDED.sketch;
    IF cardinality(old_rows) > 0 THEN  -- a customer counted before may be gone: recount those hours
        SELECT array_agg(DISTINCT hour) INTO gone
          FROM (SELECT id, date_bin('1 hour', created_at, 'epoch') AS hour, customer_email FROM unnest(old_rows)
                 WHERE payment_status = 'completed' AND customer_email IS NOT NULL
                EXCEPT SELECT id, date_bin('1 hour', created_at, 'epoch'), customer_email FROM unnest(new_rows)
                 WHERE payment_status = 'completed' AND customer_email IS NOT NULL) AS lost;
        IF gone IS NOT NULL THEN
            PERFORM customer_sketches_refresh(gone);
        END IF;
    END IF;
END $$;

-- 0045's rebuild, the same two changes.
CREATE OR REPLACE FUNCTION sales_rollups_rebuild() RETURNS void LANGUAGE sql AS $$
    TRUNCATE order_rollups, sales_rollups, checkout_rollups, customer_sketches, refund_steps;
    INSERT INTO order_rollups (bucket, currency, orders, revenue, settled_orders, settled_revenue, settled, fees,
                               deducted, aside_orders, aside_revenue)
    SELECT order_rollup_bucket(created_at), coalesce(currency, ''), count(*) FILTER (WHERE done),
           coalesce(sum(amount_total) FILTER (WHERE done), 0), count(settled_amount) FILTER (WHERE done),
           coalesce(sum(amount_total) FILTER (WHERE done AND settled_amount IS NOT NULL), 0),
           coalesce(sum(settled_amount) FILTER (WHERE done), 0), coalesce(sum(fee), 0),
           coalesce(sum(settled_refunded) FILTER (WHERE done), 0)
           + coalesce(sum(coalesce(settled_refunded, 0) - coalesce(settled_amount, 0)) FILTER (WHERE NOT done), 0),
           count(*) FILTER (WHERE done AND aside),
           coalesce(sum(amount_total) FILTER (WHERE done AND aside), 0)
      FROM (SELECT *, payment_status = 'completed' AS done,
                   settled_amount IS NULL AND settled_aside IS NOT NULL AS aside FROM orders
             WHERE payment_status = 'completed' OR (payment_status = 'refunded' AND fee IS NOT NULL)) AS o
     GROUP BY 1, 2;
    INSERT INTO refund_steps (order_id, at, amount, refunds, currency)
    SELECT o.id, s.at, s.amount, s.refunds, coalesce(o.currency, '')
      FROM orders AS o
     CROSS JOIN LATERAL refund_steps_of(o.refund_ledger, o.payment_status, o.amount_refunded, o.refunded_at) AS s
     WHERE o.refund_ledger <> '{}' OR o.refunded_at IS NOT NULL;
    INSERT INTO sales_rollups (level, bucket, currency, orders, revenue, refunds, refunded, settled_orders,
                               settled_revenue, settled, fees, deducted, voids, voided, no_email, aside_orders,
                               aside_revenue)
    SELECT 'hour', bucket, currency, sum(orders), sum(revenue), sum(refunds), sum(refunded), sum(settled_orders),
           sum(settled_revenue), sum(settled), sum(fees), sum(deducted), sum(voids), sum(voided), sum(no_email),
           sum(aside_orders), sum(aside_revenue)
      FROM (SELECT date_bin('1 hour', created_at, 'epoch') AS bucket, coalesce(currency, '') AS currency,
                   count(*) AS orders, coalesce(sum(amount_total), 0) AS revenue, 0 AS refunds, 0 AS refunded,
                   count(settled_amount) AS settled_orders,
                   coalesce(sum(amount_total) FILTER (WHERE settled_amount IS NOT NULL), 0) AS settled_revenue,
                   coalesce(sum(settled_amount), 0) AS settled, coalesce(sum(fee), 0) AS fees,
                   coalesce(sum(settled_refunded), 0) AS deducted, 0 AS voids, 0 AS voided,
                   count(*) FILTER (WHERE customer_email IS NULL) AS no_email,
                   count(*) FILTER (WHERE settled_amount IS NULL AND settled_aside IS NOT NULL) AS aside_orders,
                   coalesce(sum(amount_total) FILTER (WHERE settled_amount IS NULL AND settled_aside IS NOT NULL),
                            0) AS aside_revenue
              FROM orders WHERE payment_status = 'completed' GROUP BY 1, 2
            UNION ALL
            SELECT date_bin('1 hour', at, 'epoch'), currency, 0, 0, sum(refunds), sum(amount), 0, 0, 0, 0, 0,
                   count(*) FILTER (WHERE refunds < 0), coalesce(-sum(amount) FILTER (WHERE refunds < 0), 0), 0, 0, 0
              FROM refund_steps GROUP BY 1, 2
            UNION ALL
            SELECT date_bin('1 hour', created_at, 'epoch'), coalesce(currency, ''), 0, 0, 0, 0, 0, 0, 0, sum(fee),
                   sum(coalesce(settled_refunded, 0) - coalesce(settled_amount, 0)), 0, 0, 0, 0, 0
              FROM orders WHERE payment_status = 'refunded' AND fee IS NOT NULL GROUP BY 1, 2) AS parts
     GROUP BY 1, 2, 3;
    INSERT INTO checkout_rollups (level, bucket, started, completed)
    SELECT 'hour', date_bin('1 hour', created_at, 'epoch'), count(*), count(*) FILTER (WHERE status = 'completed')
      FROM checkout_sessions GROUP BY 1, 2;
    INSERT INTO customer_sketches (level, bucket, sketch)
    SELECT 'hour', bucket, customer_sketch_of(array_agg(DISTINCT b))
      FROM (SELECT date_bin('1 hour', created_at, 'epoch') AS bucket, customer_sketch_bit(customer_email) AS b
              FROM orders WHERE payment_status = 'completed' AND customer_email IS NOT NULL) AS bits
     GROUP BY 2;
    INSERT INTO sales_rollups (level, bucket, currency, orders, revenue, refunds, refunded, settled_orders,
                               settled_revenue, settled, fees, deducted, voids, voided, no_email, aside_orders,
                               aside_revenue)
    SELECT 'day', date_bin('1 day', bucket, 'epoch'), currency, sum(orders), sum(revenue), sum(refunds),
           sum(refunded), sum(settled_orders), sum(settled_revenue), sum(settled), sum(fees), sum(deducted),
           sum(voids), sum(voided), sum(no_email), sum(aside_orders), sum(aside_revenue)
      FROM sales_rollups WHERE level = 'hour' GROUP BY 1, 2, 3;
    INSERT INTO checkout_rollups (level, bucket, started, completed)
    SELECT 'day', date_bin('1 day', bucket, 'epoch'), sum(started), sum(completed)
      FROM checkout_rollups WHERE level = 'hour' GROUP BY 1, 2;
    INSERT INTO customer_sketches (level, bucket, sketch)
    SELECT 'day', date_bin('1 day', bucket, 'epoch'), bit_or(sketch)
      FROM customer_sketches WHERE level = 'hour' GROUP BY 1, 2;
$$;

-- The rollups stored before, brought to what the functions above give: the orders these two changes concern (fully
-- refunded ones whose refund settled at another amount than the sale, completed ones set aside; one scan of the
-- orders), added to their buckets. A refunded order's bucket may have no row when its fee was 0: it gets one.
CREATE TEMPORARY TABLE fx_aside ON COMMIT DROP AS
SELECT created_at, coalesce(currency, '') AS currency,
       CASE WHEN payment_status = 'refunded' THEN coalesce(settled_refunded, 0) - coalesce(settled_amount, 0)
            ELSE 0 END AS deducted,
       (payment_status = 'completed')::int AS aside_orders,
       CASE WHEN payment_status = 'completed' THEN coalesce(amount_total, 0) ELSE 0 END AS aside_revenue
  FROM orders
 WHERE (payment_status = 'refunded' AND fee IS NOT NULL
        AND coalesce(settled_refunded, 0) <> coalesce(settled_amount, 0))
    OR (payment_status = 'completed' AND settled_amount IS NULL AND settled_aside IS NOT NULL);

INSERT INTO order_rollups AS r (bucket, currency, orders, revenue, deducted, aside_orders, aside_revenue)
SELECT order_rollup_bucket(created_at), currency, 0, 0, sum(deducted), sum(aside_orders), sum(aside_revenue)
  FROM fx_aside
 GROUP BY 1, 2
 ORDER BY 1, 2
ON CONFLICT (bucket, currency) DO UPDATE
   SET deducted = r.deducted + EXCLUDED.deducted, aside_orders = r.aside_orders + EXCLUDED.aside_orders,
       aside_revenue = r.aside_revenue + EXCLUDED.aside_revenue;

INSERT INTO sales_rollups AS r (level, bucket, currency, orders, revenue, refunds, refunded, deducted, aside_orders,
                                aside_revenue)
SELECT l.level, date_bin(l.width, f.created_at, 'epoch'), f.currency, 0, 0, 0, 0, sum(f.deducted),
       sum(f.aside_orders), sum(f.aside_revenue)
  FROM fx_aside AS f CROSS JOIN (VALUES ('day', interval '1 day'), ('hour', interval '1 hour')) AS l(level, width)
 GROUP BY 1, 2, 3
 ORDER BY 1, 2, 3
ON CONFLICT (level, bucket, currency) DO UPDATE
   SET deducted = r.deducted + EXCLUDED.deducted, aside_orders = r.aside_orders + EXCLUDED.aside_orders,
       aside_revenue = r.aside_revenue + EXCLUDED.aside_revenue;
