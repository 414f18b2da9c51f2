-- One currency, net of fees: what Stripe settled for each order, in the account's currency, and what it kept.
-- With STRIPE_API_KEY, bot/stripe/settle.py reads each paid order's balance transactions (the charge's, its
-- refunds' and its disputes') after the ping and writes them here; the rollups of 0007 and 0011 carry the sums,
-- so store-currency totals cost what per-currency totals cost. Without a key these stay NULL and nothing fills
-- the queue. https://docs.stripe.com/api/balance_transactions/object
ALTER TABLE orders
    ADD COLUMN settled_amount       bigint,       -- the charge's balance transaction `amount`, minor units of:
    ADD COLUMN settled_currency     text,         -- its `currency` (the account's settlement currency)
    ADD COLUMN fee                  bigint,       -- Stripe's fees: the charge's `fee` plus dispute fees
    ADD COLUMN settled_refunded     bigint,       -- refunds and dispute withdrawals, settled, positive
    ADD COLUMN net                  bigint,       -- settled_amount - fee - settled_refunded (Stripe's `net`s summed)
    ADD COLUMN balance_transaction  text,         -- txn_… of the charge
    ADD COLUMN settled_at           timestamptz,  -- when the figures were read from Stripe
    ADD COLUMN settled_refund_basis bigint,       -- amount_refunded when they were read: a later refund re-reads
    ADD COLUMN settled_disputes     integer;      -- disputes known then: a later dispute re-reads

-- Orders whose Stripe figures are still to be read. A row is a claim ticket: a worker takes a batch by pushing
-- due_at forward (a lease, FOR UPDATE SKIP LOCKED), so replicas share the work without holding a transaction
-- open across Stripe's HTTP calls; success deletes the row, failure sets the next try.
CREATE TABLE settlement_fetches (
    order_id   text PRIMARY KEY REFERENCES orders (id) ON DELETE CASCADE,
    due_at     timestamptz NOT NULL,
    attempts   integer NOT NULL DEFAULT 0,
    last_error text,
    queued_at  timestamptz NOT NULL
);
CREATE INDEX settlement_fetches_due_idx ON settlement_fetches (due_at);

-- The Stripe account's default currency (GET /v1/account), the store currency when STORE_CURRENCY is unset.
CREATE TABLE stripe_account (
    id               boolean PRIMARY KEY DEFAULT true CHECK (id),
    default_currency text NOT NULL,          -- upper-case ISO code
    checked_at       timestamptz NOT NULL
);

-- Completed orders' settled figures next to their revenue, by created_at, in every rollup:
--   settled_orders/settled_revenue  how many of the bucket's orders have figures, and their amount_total
--                                   (so revenue - settled_revenue is what still awaits conversion);
--   settled, fees, deducted         their settled amount, fees, and refunds + disputes, in the settled currency.
ALTER TABLE order_rollups
    ADD COLUMN settled_orders bigint NOT NULL DEFAULT 0, ADD COLUMN settled_revenue bigint NOT NULL DEFAULT 0,
    ADD COLUMN settled bigint NOT NULL DEFAULT 0, ADD COLUMN fees bigint NOT NULL DEFAULT 0,
    ADD COLUMN deducted bigint NOT NULL DEFAULT 0;
ALTER TABLE sales_rollups
    ADD COLUMN settled_orders bigint NOT NULL DEFAULT 0, ADD COLUMN settled_revenue bigint NOT NULL DEFAULT 0,
    ADD COLUMN settled bigint NOT NULL DEFAULT 0, ADD COLUMN fees bigint NOT NULL DEFAULT 0,
    ADD COLUMN deducted bigint NOT NULL DEFAULT 0;

-- 0007's function with the settled columns: one signed pass over old and new rows.
CREATE OR REPLACE FUNCTION order_rollups_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed text := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT 1 AS sign, * FROM new_rows'
        WHEN 'DELETE' THEN 'SELECT -1 AS sign, * FROM old_rows'
        ELSE 'SELECT -1 AS sign, * FROM old_rows UNION ALL SELECT 1, * FROM new_rows' END;
BEGIN
    EXECUTE format($q$
        WITH changed AS (%s)
        INSERT INTO order_rollups AS r (bucket, currency, orders, revenue, settled_orders, settled_revenue,
                                        settled, fees, deducted)
        SELECT order_rollup_bucket(created_at), coalesce(currency, ''), sum(sign),
               sum(sign * coalesce(amount_total, 0)),
               coalesce(sum(sign) FILTER (WHERE settled_amount IS NOT NULL), 0),
               coalesce(sum(sign * coalesce(amount_total, 0)) FILTER (WHERE settled_amount IS NOT NULL), 0),
               coalesce(sum(sign * settled_amount), 0), coalesce(sum(sign * fee), 0),
               coalesce(sum(sign * settled_refunded), 0)
          FROM changed WHERE payment_status = 'completed'
         GROUP BY 1, 2
        HAVING sum(sign) <> 0 OR sum(sign * coalesce(amount_total, 0)) <> 0
            OR coalesce(sum(sign) FILTER (WHERE settled_amount IS NOT NULL), 0) <> 0
            OR coalesce(sum(sign * settled_amount), 0) <> 0 OR coalesce(sum(sign * fee), 0) <> 0
            OR coalesce(sum(sign * settled_refunded), 0) <> 0
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

-- 0011's function with the settled columns; the customer sketches part is unchanged.
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

-- 0011's rebuild with the settled columns.
CREATE OR REPLACE FUNCTION sales_rollups_rebuild() RETURNS void LANGUAGE sql AS $$
    TRUNCATE order_rollups, sales_rollups, checkout_rollups, customer_sketches;
    INSERT INTO order_rollups (bucket, currency, orders, revenue, settled_orders, settled_revenue, settled, fees,
                               deducted)
    SELECT order_rollup_bucket(created_at), coalesce(currency, ''), count(*), coalesce(sum(amount_total), 0),
           count(settled_amount), coalesce(sum(amount_total) FILTER (WHERE settled_amount IS NOT NULL), 0),
           coalesce(sum(settled_amount), 0), coalesce(sum(fee), 0), coalesce(sum(settled_refunded), 0)
      FROM orders WHERE payment_status = 'completed'
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
              FROM orders WHERE refunded_at IS NOT NULL GROUP BY 1, 2) AS parts
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
