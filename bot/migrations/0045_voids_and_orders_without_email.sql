-- Two figures of /sales, the evening report and the dashboard that the hourly and daily rollups could not give.
--
-- "Refunds made" netted each currency: sales_rollups.refunds and refunded are the sums of the refund steps (0042), a
-- refund made +1 and its amount, one that failed or was canceled -1 and its amount back. A $10 refund made and an
-- earlier $30 refund failing in one period read "net −$20.00", and the refund made was lost. The void steps are now
-- summed apart as well: `voids` (how many, positive) and `voided` (the money they gave back, positive). `refunds`
-- and `refunded` keep their meaning (the net); what was made is refunds + voids and refunded + voided.
--
-- "Customers" counts distinct emails, so orders without one counted nothing and the period read "Customers: 0"
-- beside "1 order". `no_email` counts the completed orders created in the bucket without a customer email, so the
-- answer can say how many orders it could not count (queries/sketch.py), from the rollups like the rest of /sales.
--
-- Nothing writes orders while this runs: a write already under way has finished (its trigger ran the functions
-- before these), so the backfill below sees it; a later one waits and runs the new functions.
LOCK TABLE orders IN SHARE MODE;

ALTER TABLE sales_rollups
    ADD COLUMN voids    bigint NOT NULL DEFAULT 0,   -- refunds that failed or were canceled in the bucket
    ADD COLUMN voided   bigint NOT NULL DEFAULT 0,   -- the money they gave back, minor units, positive
    ADD COLUMN no_email bigint NOT NULL DEFAULT 0;   -- completed orders created in the bucket without an email

-- 0042's function, the void steps also summed apart.
CREATE OR REPLACE FUNCTION refund_steps_change(old_rows orders[], new_rows orders[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    WITH changed AS (
        SELECT -1 AS sign, * FROM unnest(old_rows) UNION ALL SELECT 1, * FROM unnest(new_rows)
    ), moved AS MATERIALIZED (
        SELECT c.id, s.at, coalesce(c.currency, '') AS currency, s.amount, s.refunds, sum(c.sign) AS sign
          FROM changed AS c
         CROSS JOIN LATERAL refund_steps_of(c.refund_ledger, c.payment_status, c.amount_refunded, c.refunded_at) AS s
         WHERE c.refund_ledger <> '{}' OR c.refunded_at IS NOT NULL
         GROUP BY 1, 2, 3, 4, 5
        HAVING sum(c.sign) <> 0
    ), gone AS (
        DELETE FROM refund_steps AS r USING moved AS m
         WHERE m.sign < 0 AND r.order_id = m.id AND r.at = m.at
           AND NOT EXISTS (SELECT FROM moved AS n WHERE n.sign > 0 AND n.id = m.id AND n.at = m.at)
    ), kept AS (
        INSERT INTO refund_steps AS r (order_id, at, amount, refunds, currency)
        SELECT id, at, amount, refunds, currency FROM moved WHERE sign > 0 ORDER BY 1, 2
        ON CONFLICT (order_id, at) DO UPDATE
           SET amount = EXCLUDED.amount, refunds = EXCLUDED.refunds, currency = EXCLUDED.currency
    ), summed AS (
        SELECT l.level, date_bin(l.width, m.at, 'epoch') AS bucket, m.currency,
               sum(m.sign * m.refunds) AS refunds, sum(m.sign * m.amount) AS refunded,
               coalesce(sum(m.sign) FILTER (WHERE m.refunds < 0), 0) AS voids,
               coalesce(sum(-m.sign * m.amount) FILTER (WHERE m.refunds < 0), 0) AS voided
          FROM moved AS m CROSS JOIN (VALUES ('day', interval '1 day'), ('hour', interval '1 hour')) AS l(level, width)
         GROUP BY 1, 2, 3
    )
    INSERT INTO sales_rollups AS r (level, bucket, currency, orders, revenue, refunds, refunded, voids, voided)
    SELECT level, bucket, currency, 0, 0, refunds, refunded, voids, voided
      FROM summed
     WHERE refunds <> 0 OR refunded <> 0 OR voids <> 0 OR voided <> 0
     ORDER BY 1, 2, 3
    ON CONFLICT (level, bucket, currency) DO UPDATE
       SET refunds = r.refunds + EXCLUDED.refunds, refunded = r.refunded + EXCLUDED.refunded,
           voids = r.voids + EXCLUDED.voids, voided = r.voided + EXCLUDED.voided;
END $$;

-- 0042's function, the orders without an email counted.
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
               CASE WHEN customer_email IS NULL THEN sign ELSE 0 END AS no_email
          FROM changed WHERE payment_status = 'completed'
        UNION ALL
        SELECT created_at, coalesce(currency, ''), 0, 0, 0, 0, 0, sign * fee, 0, 0
          FROM changed WHERE payment_status = 'refunded' AND fee IS NOT NULL
    )
    INSERT INTO sales_rollups AS r (level, bucket, currency, orders, revenue, refunds, refunded,
                                    settled_orders, settled_revenue, settled, fees, deducted, no_email)
    SELECT l.level, date_bin(l.width, p.at, 'epoch'), p.currency,
           sum(p.orders), sum(p.revenue), 0, 0,
           sum(p.settled_orders), sum(p.settled_revenue), sum(p.settled), sum(p.fees), sum(p.deducted),
           sum(p.no_email)
      FROM parts AS p CROSS JOIN (VALUES ('day', interval '1 day'), ('hour', interval '1 hour')) AS l(level, width)
     GROUP BY 1, 2, 3
    HAVING sum(p.orders) <> 0 OR sum(p.revenue) <> 0
        OR sum(p.settled_orders) <> 0 OR sum(p.settled) <> 0 OR sum(p.fees) <> 0 OR sum(p.deducted) <> 0
        OR sum(p.no_email) <> 0
     ORDER BY 1, 2, 3
    ON CONFLICT (level, bucket, currency) DO UPDATE
       SET orders = r.orders + EXCLUDED.orders, revenue = r.revenue + EXCLUDED.revenue,
           settled_orders = r.settled_orders + EXCLUDED.settled_orders,
           settled_revenue = r.settled_revenue + EXCLUDED.settled_revenue,
           settled = r.settled + EXCLUDED.settled, fees = r.fees + EXCLUDED.fees,
           deducted = r.deducted + EXCLUDED.deducted, no_email = r.no_email + EXCLUDED.no_email;
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

-- 0042's rebuild with the three columns.
CREATE OR REPLACE FUNCTION sales_rollups_rebuild() RETURNS void LANGUAGE sql AS $$
    TRUNCATE order_rollups, sales_rollups, checkout_rollups, customer_sketches, refund_steps;
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
    INSERT INTO refund_steps (order_id, at, amount, refunds, currency)
    SELECT o.id, s.at, s.amount, s.refunds, coalesce(o.currency, '')
      FROM orders AS o
     CROSS JOIN LATERAL refund_steps_of(o.refund_ledger, o.payment_status, o.amount_refunded, o.refunded_at) AS s
     WHERE o.refund_ledger <> '{}' OR o.refunded_at IS NOT NULL;
    INSERT INTO sales_rollups (level, bucket, currency, orders, revenue, refunds, refunded, settled_orders,
                               settled_revenue, settled, fees, deducted, voids, voided, no_email)
    SELECT 'hour', bucket, currency, sum(orders), sum(revenue), sum(refunds), sum(refunded), sum(settled_orders),
           sum(settled_revenue), sum(settled), sum(fees), sum(deducted), sum(voids), sum(voided), sum(no_email)
      FROM (SELECT date_bin('1 hour', created_at, 'epoch') AS bucket, coalesce(currency, '') AS currency,
                   count(*) AS orders, coalesce(sum(amount_total), 0) AS revenue, 0 AS refunds, 0 AS refunded,
                   count(settled_amount) AS settled_orders,
                   coalesce(sum(amount_total) FILTER (WHERE settled_amount IS NOT NULL), 0) AS settled_revenue,
                   coalesce(sum(settled_amount), 0) AS settled, coalesce(sum(fee), 0) AS fees,
                   coalesce(sum(settled_refunded), 0) AS deducted, 0 AS voids, 0 AS voided,
                   count(*) FILTER (WHERE customer_email IS NULL) AS no_email
              FROM orders WHERE payment_status = 'completed' GROUP BY 1, 2
            UNION ALL
            SELECT date_bin('1 hour', at, 'epoch'), currency, 0, 0, sum(refunds), sum(amount), 0, 0, 0, 0, 0,
                   count(*) FILTER (WHERE refunds < 0), coalesce(-sum(amount) FILTER (WHERE refunds < 0), 0), 0
              FROM refund_steps GROUP BY 1, 2
            UNION ALL
            SELECT date_bin('1 hour', created_at, 'epoch'), coalesce(currency, ''), 0, 0, 0, 0, 0, 0, 0, sum(fee), 0,
                   0, 0, 0
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
                               settled_revenue, settled, fees, deducted, voids, voided, no_email)
    SELECT 'day', date_bin('1 day', bucket, 'epoch'), currency, sum(orders), sum(revenue), sum(refunds),
           sum(refunded), sum(settled_orders), sum(settled_revenue), sum(settled), sum(fees), sum(deducted),
           sum(voids), sum(voided), sum(no_email)
      FROM sales_rollups WHERE level = 'hour' GROUP BY 1, 2, 3;
    INSERT INTO checkout_rollups (level, bucket, started, completed)
    SELECT 'day', date_bin('1 day', bucket, 'epoch'), sum(started), sum(completed)
      FROM checkout_rollups WHERE level = 'hour' GROUP BY 1, 2;
    INSERT INTO customer_sketches (level, bucket, sketch)
    SELECT 'day', date_bin('1 day', bucket, 'epoch'), bit_or(sketch)
      FROM customer_sketches WHERE level = 'hour' GROUP BY 1, 2;
$$;

-- The rollups stored before: each hour's and day's voids from refund_steps, and its orders without an email from the
-- orders (an index-only scan of orders_status_created_idx, which covers customer_email). A bucket with such an order
-- has its row; one with void steps may not: a refund made and voided in the same hour, written in one statement,
-- netted to nothing and the trigger stored no row. Those rows are inserted (with their net, nothing) as a rebuild
-- would; nothing else is rewritten.
WITH hours AS (
    SELECT date_bin('1 hour', created_at, 'epoch') AS bucket, coalesce(currency, '') AS currency, 0 AS refunds,
           0 AS refunded, 0 AS voids, 0 AS voided, count(*) AS no_email
      FROM orders WHERE payment_status = 'completed' AND customer_email IS NULL
     GROUP BY 1, 2
    UNION ALL
    SELECT date_bin('1 hour', at, 'epoch'), currency, sum(refunds), sum(amount), count(*) FILTER (WHERE refunds < 0),
           coalesce(-sum(amount) FILTER (WHERE refunds < 0), 0), 0
      FROM refund_steps
     GROUP BY 1, 2
), buckets AS (
    SELECT l.level, date_bin(l.width, h.bucket, 'epoch') AS bucket, h.currency, sum(h.refunds) AS refunds,
           sum(h.refunded) AS refunded, sum(h.voids) AS voids, sum(h.voided) AS voided, sum(h.no_email) AS no_email
      FROM hours AS h CROSS JOIN (VALUES ('day', interval '1 day'), ('hour', interval '1 hour')) AS l(level, width)
     GROUP BY 1, 2, 3
    HAVING sum(h.voids) <> 0 OR sum(h.voided) <> 0 OR sum(h.no_email) <> 0
)
INSERT INTO sales_rollups AS r (level, bucket, currency, orders, revenue, refunds, refunded, voids, voided, no_email)
SELECT level, bucket, currency, 0, 0, refunds, refunded, voids, voided, no_email
  FROM buckets
 ORDER BY 1, 2, 3
ON CONFLICT (level, bucket, currency) DO UPDATE
   SET voids = EXCLUDED.voids, voided = EXCLUDED.voided, no_email = EXCLUDED.no_email;
