-- Fees on fully refunded orders. Stripe keeps its processing fee when a charge is refunded
-- (https://docs.stripe.com/refunds: "the original processing fees aren't returned"), so an order's
-- net = settled − fee − refunded, −fee for a fully refunded one. Revenue leaves a fully refunded order out
-- (payment_status 'refunded'), and so do gross and its refund, which cancel; its fee now stays in the rollups'
-- `fees`, so store-currency net counts it. The triggers and the rebuild below are 0014's with that one branch;
-- the rollups get the fees of orders refunded before this migration, without a rebuild.

-- 0014's function: a fully refunded order keeps its fee in `fees` (its own branch of parts).
CREATE OR REPLACE FUNCTION order_rollups_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed text := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT 1 AS sign, * FROM new_rows'
        WHEN 'DELETE' THEN 'SELECT -1 AS sign, * FROM old_rows'
        ELSE 'SELECT -1 AS sign, * FROM old_rows UNION ALL SELECT 1, * FROM new_rows' END;
BEGIN
    EXECUTE format($q$
        WITH changed AS (%s),
        parts AS (
            SELECT created_at, currency, sign AS orders, sign * coalesce(amount_total, 0) AS revenue,
                   CASE WHEN settled_amount IS NULL THEN 0 ELSE sign END AS settled_orders,
                   CASE WHEN settled_amount IS NULL THEN 0 ELSE sign * coalesce(amount_total, 0) END
                       AS settled_revenue,
                   sign * coalesce(settled_amount, 0) AS settled, sign * coalesce(fee, 0) AS fees,
                   sign * coalesce(settled_refunded, 0) AS deducted
              FROM changed WHERE payment_status = 'completed'
            UNION ALL
            SELECT created_at, currency, 0, 0, 0, 0, 0, sign * fee, 0
              FROM changed WHERE payment_status = 'refunded' AND fee IS NOT NULL
        )
        INSERT INTO order_rollups AS r (bucket, currency, orders, revenue, settled_orders, settled_revenue,
                                        settled, fees, deducted)
        SELECT order_rollup_bucket(created_at), coalesce(currency, ''), sum(orders), sum(revenue),
               sum(settled_orders), sum(settled_revenue), sum(settled), sum(fees), sum(deducted)
          FROM parts
         GROUP BY 1, 2
        HAVING sum(orders) <> 0 OR sum(revenue) <> 0 OR sum(settled_orders) <> 0 OR sum(settled) <> 0
            OR sum(fees) <> 0 OR sum(deducted) <> 0
         ORDER BY 1, 2
        ON CONFLICT (bucket, currency) DO UPDATE
           SET orders = r.orders + EXCLUDED.orders, revenue = r.revenue + EXCLUDED.revenue,
               settled_orders = r.settled_orders + EXCLUDED.settled_orders,
               settled_revenue = r.settled_revenue + EXCLUDED.settled_revenue,
               settled = r.settled + EXCLUDED.settled, fees = r.fees + EXCLUDED.fees,
               deducted = r.deducted + EXCLUDED.deducted
    $q$, changed);
    RETURN NULL;
END $$;

-- 0014's function: a fully refunded order keeps its fee in `fees` (its own branch of parts).
CREATE OR REPLACE FUNCTION sales_rollups_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed text := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT 1 AS sign, * FROM new_rows'
        WHEN 'DELETE' THEN 'SELECT -1 AS sign, * FROM old_rows'
        ELSE 'SELECT -1 AS sign, * FROM old_rows UNION ALL SELECT 1, * FROM new_rows' END;
    gone timestamptz[];
BEGIN
    EXECUTE format($q$
        WITH changed AS (%s),
        parts AS (
            SELECT created_at AS at, coalesce(currency, '') AS currency, sign AS orders,
                   sign * coalesce(amount_total, 0) AS revenue, 0 AS refunds, 0::bigint AS refunded,
                   CASE WHEN settled_amount IS NULL THEN 0 ELSE sign END AS settled_orders,
                   CASE WHEN settled_amount IS NULL THEN 0 ELSE sign * coalesce(amount_total, 0) END
                       AS settled_revenue,
                   sign * coalesce(settled_amount, 0) AS settled, sign * coalesce(fee, 0) AS fees,
                   sign * coalesce(settled_refunded, 0) AS deducted
              FROM changed WHERE payment_status = 'completed'
            UNION ALL
            SELECT refunded_at, coalesce(currency, ''), 0, 0, sign, sign * amount_refunded, 0, 0, 0, 0, 0
              FROM changed WHERE refunded_at IS NOT NULL
            UNION ALL
            SELECT created_at, coalesce(currency, ''), 0, 0, 0, 0, 0, 0, 0, sign * fee, 0
              FROM changed WHERE payment_status = 'refunded' AND fee IS NOT NULL
        )
        INSERT INTO sales_rollups AS r (level, bucket, currency, orders, revenue, refunds, refunded,
                                        settled_orders, settled_revenue, settled, fees, deducted)
        SELECT l.level, date_bin(l.width, p.at, 'epoch'), p.currency,
               sum(p.orders), sum(p.revenue), sum(p.refunds), sum(p.refunded),
               sum(p.settled_orders), sum(p.settled_revenue), sum(p.settled), sum(p.fees), sum(p.deducted)
          FROM parts AS p CROSS JOIN (VALUES ('day', interval '1 day'), ('hour', interval '1 hour')) AS l(level, width)
         GROUP BY 1, 2, 3
        HAVING sum(p.orders) <> 0 OR sum(p.revenue) <> 0 OR sum(p.refunds) <> 0 OR sum(p.refunded) <> 0
            OR sum(p.settled_orders) <> 0 OR sum(p.settled) <> 0 OR sum(p.fees) <> 0 OR sum(p.deducted) <> 0
         ORDER BY 1, 2, 3
        ON CONFLICT (level, bucket, currency) DO UPDATE
           SET orders = r.orders + EXCLUDED.orders, revenue = r.revenue + EXCLUDED.revenue,
               refunds = r.refunds + EXCLUDED.refunds, refunded = r.refunded + EXCLUDED.refunded,
               settled_orders = r.settled_orders + EXCLUDED.settled_orders,
               settled_revenue = r.settled_revenue + EXCLUDED.settled_revenue,
               settled = r.settled + EXCLUDED.settled, fees = r.fees + EXCLUDED.fees,
               deducted = r.deducted + EXCLUDED.deducted
    $q$, changed);
    EXECUTE format($q$
        WITH changed AS (%s),
        counted AS (SELECT sign, id, created_at, customer_email FROM changed
                     WHERE payment_status = 'completed' AND customer_email IS NOT NULL),
        added AS (SELECT id, created_at, customer_email FROM counted WHERE sign = 1
                  EXCEPT SELECT id, created_at, customer_email FROM counted WHERE sign = -1)
        INSERT INTO customer_sketches AS s (level, bucket, sketch)
        SELECT l.level, date_bin(l.width, a.created_at, 'epoch'),
               customer_sketch_of(array_agg(DISTINCT customer_sketch_bit(a.customer_email)))
          FROM added AS a CROSS JOIN (VALUES ('day', interval '1 day'), ('hour', interval '1 hour')) AS l(level, width)
         GROUP BY 1, 2
         ORDER BY 1, 2
        ON CONFLICT (level, bucket) DO UPDATE SET sketch = s.sketch | EXCLUDED.sketch
    $q$, changed);
    IF TG_OP <> 'INSERT' THEN
        EXECUTE format($q$
            WITH changed AS (%s),
            counted AS (SELECT sign, id, created_at, customer_email FROM changed
                         WHERE payment_status = 'completed' AND customer_email IS NOT NULL)
            SELECT array_agg(DISTINCT date_bin('1 hour', created_at, 'epoch'))
              FROM (SELECT id, created_at, customer_email FROM counted WHERE sign = -1
                    EXCEPT SELECT id, created_at, customer_email FROM counted WHERE sign = 1) AS lost
        $q$, changed) INTO gone;
        IF gone IS NOT NULL THEN
            PERFORM customer_sketches_refresh(gone);
        END IF;
    END IF;
    RETURN NULL;
END $$;

-- 0014's rebuild, fully refunded orders' fees included as the triggers count them.
CREATE OR REPLACE FUNCTION sales_rollups_rebuild() RETURNS void LANGUAGE sql AS $$
    TRUNCATE order_rollups, sales_rollups, checkout_rollups, customer_sketches;
    INSERT INTO order_rollups (bucket, currency, orders, revenue, settled_orders, settled_revenue, settled, fees,
                               deducted)
    SELECT order_rollup_bucket(created_at), coalesce(currency, ''), count(*) FILTER (WHERE done),
           coalesce(sum(amount_total) FILTER (WHERE done), 0), count(settled_amount) FILTER (WHERE done),
           coalesce(sum(amount_total) FILTER (WHERE done AND settled_amount IS NOT NULL), 0),
           coalesce(sum(settled_amount) FILTER (WHERE done), 0), coalesce(sum(fee), 0),
           coalesce(sum(settled_refunded) FILTER (WHERE done), 0)
      FROM (SELECT *, payment_status = 'completed' AS done FROM orders
             WHERE payment_status = 'completed' OR (payment_status = 'refunded' AND fee IS NOT NULL)) AS o
     GROUP BY 1, 2;
    INSERT INTO sales_rollups (level, bucket, currency, orders, revenue, refunds, refunded, settled_orders,
                               settled_revenue, settled, fees, deducted)
    SELECT 'hour', bucket, currency, sum(orders), sum(revenue), sum(refunds), sum(refunded), sum(settled_orders),
           sum(settled_revenue), sum(settled), sum(fees), sum(deducted)
      FROM (SELECT date_bin('1 hour', created_at, 'epoch') AS bucket, coalesce(currency, '') AS currency,
                   count(*) AS orders, coalesce(sum(amount_total), 0) AS revenue, 0 AS refunds, 0 AS refunded,
                   count(settled_amount) AS settled_orders,
                   coalesce(sum(amount_total) FILTER (WHERE settled_amount IS NOT NULL), 0) AS settled_revenue,
                   coalesce(sum(settled_amount), 0) AS settled, coalesce(sum(fee), 0) AS fees,
                   coalesce(sum(settled_refunded), 0) AS deducted
              FROM orders WHERE payment_status = 'completed' GROUP BY 1, 2
            UNION ALL
            SELECT date_bin('1 hour', refunded_at, 'epoch'), coalesce(currency, ''), 0, 0, count(*),
                   sum(amount_refunded), 0, 0, 0, 0, 0
              FROM orders WHERE refunded_at IS NOT NULL GROUP BY 1, 2
            UNION ALL
            SELECT date_bin('1 hour', created_at, 'epoch'), coalesce(currency, ''), 0, 0, 0, 0, 0, 0, 0, sum(fee), 0
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
                               settled_revenue, settled, fees, deducted)
    SELECT 'day', date_bin('1 day', bucket, 'epoch'), currency, sum(orders), sum(revenue), sum(refunds),
           sum(refunded), sum(settled_orders), sum(settled_revenue), sum(settled), sum(fees), sum(deducted)
      FROM sales_rollups WHERE level = 'hour' GROUP BY 1, 2, 3;
    INSERT INTO checkout_rollups (level, bucket, started, completed)
    SELECT 'day', date_bin('1 day', bucket, 'epoch'), sum(started), sum(completed)
      FROM checkout_rollups WHERE level = 'hour' GROUP BY 1, 2;
    INSERT INTO customer_sketches (level, bucket, sketch)
    SELECT 'day', date_bin('1 day', bucket, 'epoch'), bit_or(sketch)
      FROM customer_sketches WHERE level = 'hour' GROUP BY 1, 2;
$$;

INSERT INTO order_rollups AS r (bucket, currency, orders, revenue, fees)
SELECT order_rollup_bucket(created_at), coalesce(currency, ''), 0, 0, sum(fee)
  FROM orders WHERE payment_status = 'refunded' AND fee IS NOT NULL
 GROUP BY 1, 2
HAVING sum(fee) <> 0
ON CONFLICT (bucket, currency) DO UPDATE SET fees = r.fees + EXCLUDED.fees;

INSERT INTO sales_rollups AS r (level, bucket, currency, orders, revenue, refunds, refunded, fees)
SELECT l.level, date_bin(l.width, o.created_at, 'epoch'), coalesce(o.currency, ''), 0, 0, 0, 0, sum(o.fee)
  FROM orders AS o CROSS JOIN (VALUES ('day', interval '1 day'), ('hour', interval '1 hour')) AS l(level, width)
 WHERE o.payment_status = 'refunded' AND o.fee IS NOT NULL
 GROUP BY 1, 2, 3
HAVING sum(o.fee) <> 0
ON CONFLICT (level, bucket, currency) DO UPDATE SET fees = r.fees + EXCLUDED.fees;
