-- A refund the fees job has not read yet counted as money coming in.
--
-- An order's figures (settled_amount, fee, settled_refunded) are read from Stripe's balance transactions, and read
-- again after a refund (settlements ENQUEUE: amount_refunded no longer its settled_refund_basis) — seconds later
-- normally, hours while Stripe refuses the key, never once the key is removed. Meanwhile a fully refunded order left
-- gross while its deduction, settled_refunded − settled_amount (0050), was −settled_amount: the day's net rose by the
-- refunded sale, shown as a negative refund. A partial refund not read yet deducted nothing, and no line said so.
--
-- Such an order's figures are stale (`settled_stale`). What is known is taken off without reading Stripe again: a
-- fully refunded one counts its fee and a refund estimated at what settled for the sale (deduction 0: −fee in net,
-- never +settled); a partial refund in the currency the order settled in is deducted at its amount (no conversion:
-- exact); in another currency nothing is guessed. Each counts in `stale_orders` ("fees of N still to come"), until
-- the job reads the refund's balance transaction and the figures replace the estimate. Disputes are left out: their
-- count is in another table, which the orders' triggers do not see.
--
-- Nothing writes orders while this runs (as 0050): the backfill below sees every write made before it.
LOCK TABLE orders IN SHARE MODE;

ALTER TABLE sales_rollups ADD COLUMN stale_orders bigint NOT NULL DEFAULT 0;  -- orders whose refunds are not read
ALTER TABLE order_rollups ADD COLUMN stale_orders bigint NOT NULL DEFAULT 0;

-- Figures read before the order's latest refunds (or refunds failed or canceled): the fees job re-reads them.
CREATE FUNCTION settled_stale(o orders) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT o.settled_amount IS NOT NULL AND o.settled_at IS NOT NULL
       AND o.amount_refunded <> coalesce(o.settled_refund_basis, 0)
$$;

-- What such an order's refunds since took back, when it settled in its own currency (exact); else 0, not guessed.
CREATE FUNCTION settled_refund_wait(o orders) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN settled_stale(o) AND o.settled_currency = upper(coalesce(o.currency, ''))
                THEN o.amount_refunded - coalesce(o.settled_refund_basis, 0) ELSE 0 END
$$;

-- 0050's function: refunds not read yet estimated and counted.
CREATE OR REPLACE FUNCTION order_rollups_change(old_rows orders[], new_rows orders[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    WITH changed AS (
        SELECT -1 AS sign, u.*, settled_stale(u) AS stale, settled_refund_wait(u) AS wait FROM unnest(old_rows) AS u
        UNION ALL
        SELECT 1, u.*, settled_stale(u), settled_refund_wait(u) FROM unnest(new_rows) AS u
    ), parts AS (
        SELECT created_at, currency, sign AS orders, sign * coalesce(amount_total, 0) AS revenue,
               CASE WHEN settled_amount IS NULL THEN 0 ELSE sign END AS settled_orders,
               CASE WHEN settled_amount IS NULL THEN 0 ELSE sign * coalesce(amount_total, 0) END AS settled_revenue,
               sign * coalesce(settled_amount, 0) AS settled, sign * coalesce(fee, 0) AS fees,
               sign * (coalesce(settled_refunded, 0) + wait) AS deducted, CASE WHEN stale THEN sign ELSE 0 END AS stale_orders,
               CASE WHEN settled_amount IS NULL AND settled_aside IS NOT NULL THEN sign ELSE 0 END AS aside_orders,
               CASE WHEN settled_amount IS NULL AND settled_aside IS NOT NULL
                    THEN sign * coalesce(amount_total, 0) ELSE 0 END AS aside_revenue
          FROM changed WHERE payment_status = 'completed'
        UNION ALL
        SELECT created_at, currency, 0, 0, 0, 0, 0, sign * fee,
               sign * CASE WHEN stale THEN 0 ELSE coalesce(settled_refunded, 0) - coalesce(settled_amount, 0) END, CASE WHEN stale THEN sign ELSE 0 END, 0, 0
          FROM changed WHERE payment_status = 'refunded' AND fee IS NOT NULL
    )
    INSERT INTO order_rollups AS r (bucket, currency, orders, revenue, settled_orders, settled_revenue,
                                    settled, fees, deducted, aside_orders, aside_revenue, stale_orders)
    SELECT order_rollup_bucket(created_at), coalesce(currency, ''), sum(orders), sum(revenue),
           sum(settled_orders), sum(settled_revenue), sum(settled), sum(fees), sum(deducted), sum(aside_orders),
           sum(aside_revenue), sum(stale_orders)
      FROM parts
     GROUP BY 1, 2
    HAVING sum(orders) <> 0 OR sum(revenue) <> 0 OR sum(settled_orders) <> 0 OR sum(settled) <> 0
        OR sum(fees) <> 0 OR sum(deducted) <> 0 OR sum(aside_orders) <> 0 OR sum(aside_revenue) <> 0
        OR sum(stale_orders) <> 0
     ORDER BY 1, 2
    ON CONFLICT (bucket, currency) DO UPDATE
       SET orders = r.orders + EXCLUDED.orders, revenue = r.revenue + EXCLUDED.revenue,
           settled_orders = r.settled_orders + EXCLUDED.settled_orders,
           settled_revenue = r.settled_revenue + EXCLUDED.settled_revenue,
           settled = r.settled + EXCLUDED.settled, fees = r.fees + EXCLUDED.fees,
           deducted = r.deducted + EXCLUDED.deducted, aside_orders = r.aside_orders + EXCLUDED.aside_orders,
           aside_revenue = r.aside_revenue + EXCLUDED.aside_revenue, stale_orders = r.stale_orders + EXCLUDED.stale_orders;
END $$;

-- 0050's function, the same change.
CREATE OR REPLACE FUNCTION sales_rollups_change(old_rows orders[], new_rows orders[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    gone timestamptz[];
BEGIN
    WITH changed AS (
        SELECT -1 AS sign, u.*, settled_stale(u) AS stale, settled_refund_wait(u) AS wait FROM unnest(old_rows) AS u
        UNION ALL
        SELECT 1, u.*, settled_stale(u), settled_refund_wait(u) FROM unnest(new_rows) AS u
    ), parts AS (
        SELECT created_at AS at, coalesce(currency, '') AS currency, sign AS orders,
               sign * coalesce(amount_total, 0) AS revenue,
               CASE WHEN settled_amount IS NULL THEN 0 ELSE sign END AS settled_orders,
               CASE WHEN settled_amount IS NULL THEN 0 ELSE sign * coalesce(amount_total, 0) END AS settled_revenue,
               sign * coalesce(settled_amount, 0) AS settled, sign * coalesce(fee, 0) AS fees,
               sign * (coalesce(settled_refunded, 0) + wait) AS deducted, CASE WHEN stale THEN sign ELSE 0 END AS stale_orders,
               CASE WHEN customer_email IS NULL THEN sign ELSE 0 END AS no_email,
               CASE WHEN settled_amount IS NULL AND settled_aside IS NOT NULL THEN sign ELSE 0 END AS aside_orders,
               CASE WHEN settled_amount IS NULL AND settled_aside IS NOT NULL
                    THEN sign * coalesce(amount_total, 0) ELSE 0 END AS aside_revenue
          FROM changed WHERE payment_status = 'completed'
        UNION ALL
        SELECT created_at, coalesce(currency, ''), 0, 0, 0, 0, 0, sign * fee,
               sign * CASE WHEN stale THEN 0 ELSE coalesce(settled_refunded, 0) - coalesce(settled_amount, 0) END, CASE WHEN stale THEN sign ELSE 0 END, 0, 0, 0
          FROM changed WHERE payment_status = 'refunded' AND fee IS NOT NULL
    )
    INSERT INTO sales_rollups AS r (level, bucket, currency, orders, revenue, refunds, refunded,
                                    settled_orders, settled_revenue, settled, fees, deducted, no_email,
                                    aside_orders, aside_revenue, stale_orders)
    SELECT l.level, date_bin(l.width, p.at, 'epoch'), p.currency,
           sum(p.orders), sum(p.revenue), 0, 0,
           sum(p.settled_orders), sum(p.settled_revenue), sum(p.settled), sum(p.fees), sum(p.deducted),
           sum(p.no_email), sum(p.aside_orders), sum(p.aside_revenue), sum(p.stale_orders)
      FROM parts AS p CROSS JOIN (VALUES ('day', interval '1 day'), ('hour', interval '1 hour')) AS l(level, width)
     GROUP BY 1, 2, 3
    HAVING sum(p.orders) <> 0 OR sum(p.revenue) <> 0
        OR sum(p.settled_orders) <> 0 OR sum(p.settled) <> 0 OR sum(p.fees) <> 0 OR sum(p.deducted) <> 0
        OR sum(p.no_email) <> 0 OR sum(p.aside_orders) <> 0 OR sum(p.aside_revenue) <> 0 OR sum(p.stale_orders) <> 0
     ORDER BY 1, 2, 3
    ON CONFLICT (level, bucket, currency) DO UPDATE
       SET orders = r.orders + EXCLUDED.orders, revenue = r.revenue + EXCLUDED.revenue,
           settled_orders = r.settled_orders + EXCLUDED.settled_orders,
           settled_revenue = r.settled_revenue + EXCLUDED.settled_revenue,
           settled = r.settled + EXCLUDED.settled, fees = r.fees + EXCLUDED.fees,
           deducted = r.deducted + EXCLUDED.deducted, no_email = r.no_email + EXCLUDED.no_email,
           aside_orders = r.aside_orders + EXCLUDED.aside_orders,
           aside_revenue = r.aside_revenue + EXCLUDED.aside_revenue, stale_orders = r.stale_orders + EXCLUDED.stale_orders;
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

-- 0050's rebuild, the same change.
CREATE OR REPLACE FUNCTION sales_rollups_rebuild() RETURNS void LANGUAGE sql AS $$
    TRUNCATE order_rollups, sales_rollups, checkout_rollups, customer_sketches, refund_steps;
    INSERT INTO order_rollups (bucket, currency, orders, revenue, settled_orders, settled_revenue, settled, fees,
                               deducted, aside_orders, aside_revenue, stale_orders)
    SELECT order_rollup_bucket(created_at), coalesce(currency, ''), count(*) FILTER (WHERE done),
           coalesce(sum(amount_total) FILTER (WHERE done), 0), count(settled_amount) FILTER (WHERE done),
           coalesce(sum(amount_total) FILTER (WHERE done AND settled_amount IS NOT NULL), 0),
           coalesce(sum(settled_amount) FILTER (WHERE done), 0), coalesce(sum(fee), 0),
           coalesce(sum(coalesce(settled_refunded, 0) + wait) FILTER (WHERE done), 0)
           + coalesce(sum(coalesce(settled_refunded, 0) - coalesce(settled_amount, 0))
                      FILTER (WHERE NOT done AND NOT stale), 0),
           count(*) FILTER (WHERE done AND aside),
           coalesce(sum(amount_total) FILTER (WHERE done AND aside), 0), count(*) FILTER (WHERE stale)
      FROM (SELECT *, payment_status = 'completed' AS done, settled_stale(orders) AS stale,
                   settled_refund_wait(orders) AS wait,
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
                               aside_revenue, stale_orders)
    SELECT 'hour', bucket, currency, sum(orders), sum(revenue), sum(refunds), sum(refunded), sum(settled_orders),
           sum(settled_revenue), sum(settled), sum(fees), sum(deducted), sum(voids), sum(voided), sum(no_email),
           sum(aside_orders), sum(aside_revenue), sum(stale_orders)
      FROM (SELECT date_bin('1 hour', created_at, 'epoch') AS bucket, coalesce(currency, '') AS currency,
                   count(*) AS orders, coalesce(sum(amount_total), 0) AS revenue, 0 AS refunds, 0 AS refunded,
                   count(settled_amount) AS settled_orders,
                   coalesce(sum(amount_total) FILTER (WHERE settled_amount IS NOT NULL), 0) AS settled_revenue,
                   coalesce(sum(settled_amount), 0) AS settled, coalesce(sum(fee), 0) AS fees,
                   coalesce(sum(coalesce(settled_refunded, 0) + settled_refund_wait(orders)), 0) AS deducted,
                   0 AS voids, 0 AS voided,
                   count(*) FILTER (WHERE customer_email IS NULL) AS no_email,
                   count(*) FILTER (WHERE settled_amount IS NULL AND settled_aside IS NOT NULL) AS aside_orders,
                   coalesce(sum(amount_total) FILTER (WHERE settled_amount IS NULL AND settled_aside IS NOT NULL),
                            0) AS aside_revenue,
                   count(*) FILTER (WHERE settled_stale(orders)) AS stale_orders
              FROM orders WHERE payment_status = 'completed' GROUP BY 1, 2
            UNION ALL
            SELECT date_bin('1 hour', at, 'epoch'), currency, 0, 0, sum(refunds), sum(amount), 0, 0, 0, 0, 0,
                   count(*) FILTER (WHERE refunds < 0), coalesce(-sum(amount) FILTER (WHERE refunds < 0), 0), 0, 0, 0, 0
              FROM refund_steps GROUP BY 1, 2
            UNION ALL
            SELECT date_bin('1 hour', created_at, 'epoch'), coalesce(currency, ''), 0, 0, 0, 0, 0, 0, 0, sum(fee),
                   sum(CASE WHEN settled_stale(orders) THEN 0
                            ELSE coalesce(settled_refunded, 0) - coalesce(settled_amount, 0) END), 0, 0, 0, 0, 0,
                   count(*) FILTER (WHERE settled_stale(orders))
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
                               aside_revenue, stale_orders)
    SELECT 'day', date_bin('1 day', bucket, 'epoch'), currency, sum(orders), sum(revenue), sum(refunds),
           sum(refunded), sum(settled_orders), sum(settled_revenue), sum(settled), sum(fees), sum(deducted),
           sum(voids), sum(voided), sum(no_email), sum(aside_orders), sum(aside_revenue), sum(stale_orders)
      FROM sales_rollups WHERE level = 'hour' GROUP BY 1, 2, 3;
    INSERT INTO checkout_rollups (level, bucket, started, completed)
    SELECT 'day', date_bin('1 day', bucket, 'epoch'), sum(started), sum(completed)
      FROM checkout_rollups WHERE level = 'hour' GROUP BY 1, 2;
    INSERT INTO customer_sketches (level, bucket, sketch)
    SELECT 'day', date_bin('1 day', bucket, 'epoch'), bit_or(sketch)
      FROM customer_sketches WHERE level = 'hour' GROUP BY 1, 2;
$$;


-- The rollups stored before, brought to what the functions above give: the orders with stale figures (few: those
-- refunded since their figures were read) moved from the old deduction to the new, and counted, in their buckets.
CREATE TEMPORARY TABLE not_reread ON COMMIT DROP AS
SELECT created_at, coalesce(currency, '') AS currency,
       CASE WHEN payment_status = 'refunded' THEN coalesce(settled_amount, 0) - coalesce(settled_refunded, 0)
            ELSE settled_refund_wait(orders) END AS deducted
  FROM orders
 WHERE settled_stale(orders) AND (payment_status = 'completed' OR (payment_status = 'refunded' AND fee IS NOT NULL));

INSERT INTO order_rollups AS r (bucket, currency, orders, revenue, deducted, stale_orders)
SELECT order_rollup_bucket(created_at), currency, 0, 0, sum(deducted), count(*)
  FROM not_reread
 GROUP BY 1, 2
 ORDER BY 1, 2
ON CONFLICT (bucket, currency) DO UPDATE
   SET deducted = r.deducted + EXCLUDED.deducted, stale_orders = r.stale_orders + EXCLUDED.stale_orders;

INSERT INTO sales_rollups AS r (level, bucket, currency, orders, revenue, refunds, refunded, deducted, stale_orders)
SELECT l.level, date_bin(l.width, n.created_at, 'epoch'), n.currency, 0, 0, 0, 0, sum(n.deducted), count(*)
  FROM not_reread AS n CROSS JOIN (VALUES ('day', interval '1 day'), ('hour', interval '1 hour')) AS l(level, width)
 GROUP BY 1, 2, 3
 ORDER BY 1, 2, 3
ON CONFLICT (level, bucket, currency) DO UPDATE
   SET deducted = r.deducted + EXCLUDED.deducted, stale_orders = r.stale_orders + EXCLUDED.stale_orders;
