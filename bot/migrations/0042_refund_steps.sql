-- Each refund counted at its own time, not an order's whole refunded amount at its latest refund.
--
-- 0011-0023 counted an order's amount_refunded at its refunded_at: a $10 refund on day 1 and $5 more on day 2 left
-- day 1 with none and day 2 with one of $15, and day 1's figure changed after the fact. The order keeps what Stripe
-- said (refund_ledger, 0037; bot/intake/refunds.py), so its refunded amount as the ledger stood at any moment can be
-- derived, and its *steps*: each rise at its charge.refunded's time, each fall (a refund that failed or was
-- canceled: the money came back) at its void's time. The steps add up to amount_refunded.
--
-- refund_steps holds them (the edges of a /sales window read it by time), kept with the sales rollups' refunds and
-- refunded by the orders' rollup trigger, so every writer counts: the intake, COPY, a fix typed at psql. A row's
-- `refunds` is what it adds to "Refunds made"'s count: 1 for a refund made, -1 for one voided (a refund made and
-- voided in one period counts none; voided in a later period, that period shows it as -1 and its money back).
CREATE TABLE refund_steps (
    order_id text NOT NULL,
    at       timestamptz NOT NULL,
    amount   bigint NOT NULL,   -- minor units; negative when a void gave money back
    refunds  int NOT NULL,      -- 1 or -1
    currency text NOT NULL,     -- '' when the order has none, as in the rollups
    PRIMARY KEY (order_id, at)
);
CREATE INDEX refund_steps_at_idx ON refund_steps (at);

-- The steps are the orders', so they go with them (a DELETE of orders takes its rows' steps out in the trigger).
CREATE FUNCTION refund_steps_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE refund_steps;
    RETURN NULL;
END $$;
CREATE TRIGGER orders_truncated AFTER TRUNCATE ON orders FOR EACH STATEMENT EXECUTE FUNCTION refund_steps_truncate();

-- An order's steps, the same whatever order its facts arrived in (the ledger is). At each fact's time t the
-- refunded amount is what bot/intake/refunds.py `_derive` computes from the facts by then — charges at or before
-- t, voids gone by t — so the last one is amount_refunded: the largest of each charge.refunded's amount less the
-- refunds it counted (created by then) voided after it, at the same time the void taken as the later; 0 at least,
-- and nothing while the order is a placeholder ('linked'). An order with no ledger ('{}': stored before 0037, seeded,
-- or written by hand) counts its amount_refunded at its refunded_at, as the rollups did before.
CREATE FUNCTION refund_steps_of(ledger jsonb, payment_status text, amount_refunded bigint, refunded_at timestamptz)
    RETURNS TABLE (at timestamptz, amount bigint, refunds int) LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    WITH charges AS (
        SELECT (c->>0)::bigint AS amount, (c->>1)::bigint AS at
          FROM jsonb_array_elements(CASE WHEN payment_status <> 'linked' THEN ledger->'charges' END) AS c
    ), voids AS (
        SELECT (v->>0)::bigint AS amount, (v->>1)::bigint AS created, (v->>2)::bigint AS gone
          FROM jsonb_each(CASE WHEN payment_status <> 'linked' THEN ledger->'voids' END) AS e (id, v)
    ), kept AS (
        SELECT t.at, greatest(0, max(c.amount - (SELECT coalesce(sum(v.amount), 0) FROM voids AS v
                                                   WHERE v.created <= c.at AND c.at <= v.gone
                                                     AND v.gone <= t.at))) AS amount
          FROM (SELECT at FROM charges UNION SELECT gone FROM voids) AS t
          LEFT JOIN charges AS c ON c.at <= t.at
         GROUP BY t.at
    ), steps AS (
        SELECT at, amount - coalesce(lag(amount) OVER (ORDER BY at), 0) AS amount FROM kept
    )
    SELECT micros_at(at), amount, sign(amount)::int FROM steps WHERE amount <> 0
    UNION ALL
    SELECT refunded_at, amount_refunded, 1 WHERE ledger = '{}' AND refunded_at IS NOT NULL
$$;

-- The steps an UPDATE, INSERT or DELETE of orders moved: refund_steps and the sales rollups' refunds follow them.
-- Rows with neither a ledger nor a refunded_at have none (sales_rollups_change does not call this for them).
-- One statement: the steps are derived once; refund_steps loses what no new row keeps, and the rest is upserted
-- (a key both deleted and upserted would be one row changed twice in a statement).
CREATE FUNCTION refund_steps_change(old_rows orders[], new_rows orders[]) RETURNS void LANGUAGE plpgsql AS $$
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
    )
    INSERT INTO sales_rollups AS r (level, bucket, currency, orders, revenue, refunds, refunded)
    SELECT l.level, date_bin(l.width, m.at, 'epoch'), m.currency, 0, 0, sum(m.sign * m.refunds),
           sum(m.sign * m.amount)
      FROM moved AS m CROSS JOIN (VALUES ('day', interval '1 day'), ('hour', interval '1 hour')) AS l(level, width)
     GROUP BY 1, 2, 3
    HAVING sum(m.sign * m.refunds) <> 0 OR sum(m.sign * m.amount) <> 0
     ORDER BY 1, 2, 3
    ON CONFLICT (level, bucket, currency) DO UPDATE
       SET refunds = r.refunds + EXCLUDED.refunds, refunded = r.refunded + EXCLUDED.refunded;
END $$;

-- 0023's function, its refunds branch (amount_refunded at refunded_at) moved to refund_steps_change, which runs only
-- when a row of the statement has refunds: an order without any costs one check of two columns more.
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
               sign * coalesce(settled_refunded, 0) AS deducted
          FROM changed WHERE payment_status = 'completed'
        UNION ALL
        SELECT created_at, coalesce(currency, ''), 0, 0, 0, 0, 0, sign * fee, 0
          FROM changed WHERE payment_status = 'refunded' AND fee IS NOT NULL
    )
    INSERT INTO sales_rollups AS r (level, bucket, currency, orders, revenue, refunds, refunded,
                                    settled_orders, settled_revenue, settled, fees, deducted)
    SELECT l.level, date_bin(l.width, p.at, 'epoch'), p.currency,
           sum(p.orders), sum(p.revenue), 0, 0,
           sum(p.settled_orders), sum(p.settled_revenue), sum(p.settled), sum(p.fees), sum(p.deducted)
      FROM parts AS p CROSS JOIN (VALUES ('day', interval '1 day'), ('hour', interval '1 hour')) AS l(level, width)
     GROUP BY 1, 2, 3
    HAVING sum(p.orders) <> 0 OR sum(p.revenue) <> 0
        OR sum(p.settled_orders) <> 0 OR sum(p.settled) <> 0 OR sum(p.fees) <> 0 OR sum(p.deducted) <> 0
     ORDER BY 1, 2, 3
    ON CONFLICT (level, bucket, currency) DO UPDATE
       SET orders = r.orders + EXCLUDED.orders, revenue = r.revenue + EXCLUDED.revenue,
           settled_orders = r.settled_orders + EXCLUDED.settled_orders,
           settled_revenue = r.settled_revenue + EXCLUDED.settled_revenue,
           settled = r.settled + EXCLUDED.settled, fees = r.fees + EXCLUDED.fees,
           deducted = r.deducted + EXCLUDED.deducted;
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

-- 0016's rebuild, refunds counted by their steps (refund_steps rebuilt from the orders first).
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
            SELECT date_bin('1 hour', at, 'epoch'), currency, 0, 0, sum(refunds), sum(amount), 0, 0, 0, 0, 0
              FROM refund_steps GROUP BY 1, 2
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

-- The orders stored before: their steps, and the rollups moved to them without a full rebuild. An order with no
-- ledger counts as it did (its amount_refunded at its refunded_at); one with a ledger leaves its old count there
-- for its steps.
INSERT INTO refund_steps (order_id, at, amount, refunds, currency)
SELECT o.id, s.at, s.amount, s.refunds, coalesce(o.currency, '')
  FROM orders AS o
 CROSS JOIN LATERAL refund_steps_of(o.refund_ledger, o.payment_status, o.amount_refunded, o.refunded_at) AS s
 WHERE o.refund_ledger <> '{}' OR o.refunded_at IS NOT NULL;

INSERT INTO sales_rollups AS r (level, bucket, currency, orders, revenue, refunds, refunded)
SELECT l.level, date_bin(l.width, p.at, 'epoch'), p.currency, 0, 0, sum(p.refunds), sum(p.amount)
  FROM (SELECT refunded_at AS at, coalesce(currency, '') AS currency, -1 AS refunds, -amount_refunded AS amount
          FROM orders WHERE refund_ledger <> '{}' AND refunded_at IS NOT NULL
        UNION ALL
        SELECT s.at, s.currency, s.refunds, s.amount
          FROM refund_steps AS s JOIN orders AS o ON o.id = s.order_id WHERE o.refund_ledger <> '{}') AS p
 CROSS JOIN (VALUES ('day', interval '1 day'), ('hour', interval '1 hour')) AS l(level, width)
 GROUP BY 1, 2, 3
HAVING sum(p.refunds) <> 0 OR sum(p.amount) <> 0
ON CONFLICT (level, bucket, currency) DO UPDATE
   SET refunds = r.refunds + EXCLUDED.refunds, refunded = r.refunded + EXCLUDED.refunded;
