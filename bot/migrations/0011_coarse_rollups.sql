-- Hourly and daily rollups next to the 15-minute one (0007), so a 30-day window reads ~30 daily rows, the
-- hours and quarter-hours at its edges and at most an hour of orders at either end, whatever the table holds:
--   sales_rollups      completed orders and revenue by created_at, refunds by refunded_at, per currency;
--   checkout_rollups   checkout sessions started and completed, by created_at;
--   customer_sketches  a distinct-count sketch of the customers of completed orders (PCSA, below).
-- Buckets are UTC hours and days (date_bin from the epoch, whatever the session's TimeZone). Statement-level
-- triggers with transition tables keep them current on every path that writes: the batch intake, single
-- events, COPY, manual fixes. `salespulse seed` disables them during its COPY and calls
-- sales_rollups_rebuild() once at the end (one GROUP BY instead of one trigger run per chunk).

CREATE TABLE sales_rollups (
    level    text NOT NULL,          -- 'day' | 'hour'
    bucket   timestamptz NOT NULL,
    currency text NOT NULL,          -- '' when an order has none
    orders   bigint NOT NULL,        -- completed orders created in the bucket
    revenue  bigint NOT NULL,        -- their amount_total, minor units
    refunds  bigint NOT NULL,        -- orders refunded (fully or partly) in the bucket, by refunded_at
    refunded bigint NOT NULL,        -- their amount_refunded
    PRIMARY KEY (level, bucket, currency)
);

CREATE TABLE checkout_rollups (
    level     text NOT NULL,
    bucket    timestamptz NOT NULL,
    started   bigint NOT NULL,       -- sessions created in the bucket, any status
    completed bigint NOT NULL,       -- those of them now 'completed'
    PRIMARY KEY (level, bucket)
);

-- Probabilistic counting with stochastic averaging (Flajolet & Martin 1985): 4096 bitmaps of 32 bits. A
-- customer's 64-bit hash picks bitmap j (its low 12 bits) and bit r (geometric: P(r = k) = 2^-(k+1)) from the
-- rest. Unions are a bitwise OR, which PostgreSQL's bit_or aggregate does at C speed; the estimate
-- (queries/sketch.py) has a standard error of 0.78/sqrt(4096) = 1.2%. The hash is the one UNIQUE_CUSTOMERS
-- counts distinct, so the sketch and the exact count agree on what "one customer" is.
CREATE TABLE customer_sketches (
    level  text NOT NULL,
    bucket timestamptz NOT NULL,
    sketch bit varying NOT NULL,     -- 131072 bits: bit j*32 + r
    PRIMARY KEY (level, bucket)
);

CREATE FUNCTION customer_sketch_bit(email text) RETURNS int
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT ((hashtextextended(email, 0) & 4095) * 32
                  + least(31, 51 - floor(ln(((hashtextextended(email, 0) >> 12) & 4503599627370495 | 1)::float8)
                                         / 0.6931471805599453)))::int $$;

-- A sketch from the set bits it holds: its words OR-ed per bitmap, written as hex with the empty words as zeros
-- (a quarter of the text a '0'/'1' string would take, half the time).
CREATE FUNCTION customer_sketch_of(bits int[]) RETURNS bit varying
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT ('x' || string_agg(repeat('0', 8 * (j - coalesce(p, -1) - 1)) || lpad(to_hex(w), 8, '0'), ''
                                    ORDER BY j)
                  || repeat('0', 8 * (4095 - max(j))))::bit varying
            FROM (SELECT j, w, lag(j) OVER (ORDER BY j) AS p
                    FROM (SELECT b >> 5 AS j, bit_or(1 << (31 - (b & 31))) AS w
                            FROM unnest(bits) AS b GROUP BY 1) AS words) AS s $$;

-- Rebuild the sketches of these hours from the orders, then their days from the hours.
CREATE FUNCTION customer_sketches_refresh(hours timestamptz[]) RETURNS void LANGUAGE sql AS $$
    DELETE FROM customer_sketches
     WHERE (level = 'hour' AND bucket = ANY(hours))
        OR (level = 'day' AND bucket IN (SELECT date_bin('1 day', h, 'epoch') FROM unnest(hours) AS h));
    INSERT INTO customer_sketches (level, bucket, sketch)
    SELECT 'hour', h, customer_sketch_of(array_agg(DISTINCT customer_sketch_bit(o.customer_email)))
      FROM unnest(hours) AS h
      JOIN orders AS o ON o.payment_status = 'completed' AND o.customer_email IS NOT NULL
                      AND o.created_at >= h AND o.created_at < h + interval '1 hour'
     GROUP BY h;
    INSERT INTO customer_sketches (level, bucket, sketch)
    SELECT 'day', d, bit_or(s.sketch)
      FROM (SELECT DISTINCT date_bin('1 day', h, 'epoch') AS d FROM unnest(hours) AS h) AS days
      JOIN customer_sketches AS s ON s.level = 'hour' AND s.bucket >= d AND s.bucket < d + interval '1 day'
     GROUP BY d;
$$;

-- What one statement on orders changed: `changed` holds its rows with sign -1 (before) and +1 (after).
CREATE FUNCTION sales_rollups_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed text := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT 1 AS sign, * FROM new_rows'
        WHEN 'DELETE' THEN 'SELECT -1 AS sign, * FROM old_rows'
        ELSE 'SELECT -1 AS sign, * FROM old_rows UNION ALL SELECT 1, * FROM new_rows' END;
    gone timestamptz[];
BEGIN
    -- Net deltas per bucket in key order (no deadlock between writers); a no-op change locks nothing.
    EXECUTE format($q$
        WITH changed AS (%s),
        parts AS (
            SELECT created_at AS at, coalesce(currency, '') AS currency, sign AS orders,
                   sign * coalesce(amount_total, 0) AS revenue, 0 AS refunds, 0::bigint AS refunded
              FROM changed WHERE payment_status = 'completed'
            UNION ALL
            SELECT refunded_at, coalesce(currency, ''), 0, 0, sign, sign * amount_refunded
              FROM changed WHERE refunded_at IS NOT NULL
        )
        INSERT INTO sales_rollups AS r (level, bucket, currency, orders, revenue, refunds, refunded)
        SELECT l.level, date_bin(l.width, p.at, 'epoch'), p.currency,
               sum(p.orders), sum(p.revenue), sum(p.refunds), sum(p.refunded)
          FROM parts AS p CROSS JOIN (VALUES ('day', interval '1 day'), ('hour', interval '1 hour')) AS l(level, width)
         GROUP BY 1, 2, 3
        HAVING sum(p.orders) <> 0 OR sum(p.revenue) <> 0 OR sum(p.refunds) <> 0 OR sum(p.refunded) <> 0
         ORDER BY 1, 2, 3
        ON CONFLICT (level, bucket, currency) DO UPDATE
           SET orders = r.orders + EXCLUDED.orders, revenue = r.revenue + EXCLUDED.revenue,
               refunds = r.refunds + EXCLUDED.refunds, refunded = r.refunded + EXCLUDED.refunded
    $q$, changed);
    -- New customers are OR-ed in; a sketch cannot forget one, so hours that lost a completed order
    -- (refund, delete, moved, another email) are rebuilt from the orders, and their days from the hours.
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

CREATE FUNCTION checkout_rollups_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed text := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT 1 AS sign, * FROM new_rows'
        WHEN 'DELETE' THEN 'SELECT -1 AS sign, * FROM old_rows'
        ELSE 'SELECT -1 AS sign, * FROM old_rows UNION ALL SELECT 1, * FROM new_rows' END;
BEGIN
    EXECUTE format($q$
        WITH changed AS (%s)
        INSERT INTO checkout_rollups AS r (level, bucket, started, completed)
        SELECT l.level, date_bin(l.width, c.created_at, 'epoch'), sum(c.sign),
               coalesce(sum(c.sign) FILTER (WHERE c.status = 'completed'), 0)
          FROM changed AS c CROSS JOIN (VALUES ('day', interval '1 day'), ('hour', interval '1 hour')) AS l(level, width)
         GROUP BY 1, 2
        HAVING sum(c.sign) <> 0 OR coalesce(sum(c.sign) FILTER (WHERE c.status = 'completed'), 0) <> 0
         ORDER BY 1, 2
        ON CONFLICT (level, bucket) DO UPDATE
           SET started = r.started + EXCLUDED.started, completed = r.completed + EXCLUDED.completed
    $q$, changed);
    RETURN NULL;
END $$;

CREATE TRIGGER orders_sales_rollups_insert AFTER INSERT ON orders
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION sales_rollups_apply();
CREATE TRIGGER orders_sales_rollups_update AFTER UPDATE ON orders
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION sales_rollups_apply();
CREATE TRIGGER orders_sales_rollups_delete AFTER DELETE ON orders
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION sales_rollups_apply();
CREATE TRIGGER checkout_rollups_insert AFTER INSERT ON checkout_sessions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION checkout_rollups_apply();
CREATE TRIGGER checkout_rollups_update AFTER UPDATE ON checkout_sessions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION checkout_rollups_apply();
CREATE TRIGGER checkout_rollups_delete AFTER DELETE ON checkout_sessions
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION checkout_rollups_apply();

-- Every rollup (the 15-minute one included) recomputed from the tables: after a bulk load with the triggers
-- off, and here for the rows already stored.
CREATE FUNCTION sales_rollups_rebuild() RETURNS void LANGUAGE sql AS $$
    TRUNCATE order_rollups, sales_rollups, checkout_rollups, customer_sketches;
    INSERT INTO order_rollups (bucket, currency, orders, revenue)
    SELECT order_rollup_bucket(created_at), coalesce(currency, ''), count(*), coalesce(sum(amount_total), 0)
      FROM orders WHERE payment_status = 'completed'
     GROUP BY 1, 2;
    INSERT INTO sales_rollups (level, bucket, currency, orders, revenue, refunds, refunded)
    SELECT 'hour', bucket, currency, sum(orders), sum(revenue), sum(refunds), sum(refunded)
      FROM (SELECT date_bin('1 hour', created_at, 'epoch') AS bucket, coalesce(currency, '') AS currency,
                   count(*) AS orders, coalesce(sum(amount_total), 0) AS revenue, 0 AS refunds, 0 AS refunded
              FROM orders WHERE payment_status = 'completed' GROUP BY 1, 2
            UNION ALL
            SELECT date_bin('1 hour', refunded_at, 'epoch'), coalesce(currency, ''), 0, 0, count(*),
                   sum(amount_refunded)
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
    -- Days from hours: every day bucket is the exact sum (or union) of its 24 hour buckets.
    INSERT INTO sales_rollups (level, bucket, currency, orders, revenue, refunds, refunded)
    SELECT 'day', date_bin('1 day', bucket, 'epoch'), currency, sum(orders), sum(revenue), sum(refunds), sum(refunded)
      FROM sales_rollups WHERE level = 'hour' GROUP BY 1, 2, 3;
    INSERT INTO checkout_rollups (level, bucket, started, completed)
    SELECT 'day', date_bin('1 day', bucket, 'epoch'), sum(started), sum(completed)
      FROM checkout_rollups WHERE level = 'hour' GROUP BY 1, 2;
    INSERT INTO customer_sketches (level, bucket, sketch)
    SELECT 'day', date_bin('1 day', bucket, 'epoch'), bit_or(sketch)
      FROM customer_sketches WHERE level = 'hour' GROUP BY 1, 2;
$$;

SELECT sales_rollups_rebuild();
