-- Each refund made or voided its own step, whatever the second it shares with another.
--
-- 0042's refund_steps_of() gave one step per instant of the ledger (its time to the second): the change of the
-- amount refunded, counted 1 or -1 by its sign. Two refunds failing in the same second (Stripe's refund.failed events
-- of one bank return share their `created`) read as one ("$30.00 back (1 failed or canceled)" while the failure
-- messages said 2), and a refund made in the same second as another was voided netted into one step, the void lost.
-- The facts of an instant are now taken one at a time — its voids first, then its charge.refunded facts (at the same
-- second a void is the later, as bot/intake/refunds.py has it: the charge.refunded of that second counted it), each
-- kind by amount, then id — and each change of the amount refunded is a step of its own: a void's a fall, counted -1,
-- a charge.refunded's a rise, counted 1 (each one's own refund: its cumulative amount less the one before). The steps
-- of an instant add up to what its one step was, so amount_refunded and every "refunded" figure stay; the counts of
-- "Refunds made" and its voids become real. bot/intake/refunds.py `refund_steps` derives the same (the tests hold
-- them equal).
--
-- refund_steps may then hold several rows of one order at one instant (two $10 refunds failing at once are two equal
-- rows): its key (order_id, at) becomes a plain index, and refund_steps_change replaces all the rows of each order and
-- instant it moves. The stored steps of orders with a ledger, and the rollups' counts, are derived again below.
--
-- Nothing writes orders while this runs: a write already under way has finished (its trigger ran the functions
-- before these), so the backfill below sees it; a later one waits and runs the new functions.
LOCK TABLE orders IN SHARE MODE;

CREATE OR REPLACE FUNCTION refund_steps_of(ledger jsonb, payment_status text, amount_refunded bigint,
                                           refunded_at timestamptz)
    RETURNS TABLE (at timestamptz, amount bigint, refunds int) LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    WITH charges AS (
        SELECT (c->>0)::bigint AS amount, (c->>1)::bigint AS at
          FROM jsonb_array_elements(CASE WHEN payment_status <> 'linked' THEN ledger->'charges' END) AS c
    ), voids AS (
        SELECT e.id, (v->>0)::bigint AS amount, (v->>1)::bigint AS created, (v->>2)::bigint AS gone
          FROM jsonb_each(CASE WHEN payment_status <> 'linked' THEN ledger->'voids' END) AS e (id, v)
    ), facts AS (  -- in the order they are taken: by time, a void before a charge.refunded, by amount, by id
        SELECT gone AS at, 0 AS kind, amount, id COLLATE "C" AS id FROM voids
        UNION ALL
        SELECT at, 1, amount, '' FROM charges
    ), kept AS (
        SELECT f.at, f.kind, f.amount AS fact_amount, f.id,
               greatest(0, max(c.amount - (SELECT coalesce(sum(v.amount), 0) FROM voids AS v
                                            WHERE v.created <= c.at AND c.at <= v.gone
                                              AND (v.gone, 0, v.amount, v.id COLLATE "C")
                                                  <= (f.at, f.kind, f.amount, f.id)))) AS amount
          FROM facts AS f
          LEFT JOIN charges AS c ON (c.at, 1, c.amount, '') <= (f.at, f.kind, f.amount, f.id)
         GROUP BY 1, 2, 3, 4
    ), steps AS (
        SELECT at, kind, fact_amount, id,
               amount - coalesce(lag(amount) OVER (ORDER BY at, kind, fact_amount, id), 0) AS amount
          FROM kept
    )
    SELECT micros_at(at), amount, sign(amount)::int FROM steps WHERE amount <> 0
    UNION ALL
    SELECT refunded_at, amount_refunded, 1 WHERE ledger = '{}' AND refunded_at IS NOT NULL
$$;

ALTER TABLE refund_steps DROP CONSTRAINT refund_steps_pkey;
CREATE INDEX refund_steps_order_at_idx ON refund_steps (order_id, at);

-- 0045's function: the steps of each order and instant the statement moved replaced as a whole (rows of one instant
-- may be equal), the rollups moved by each step, a void counting one.
CREATE OR REPLACE FUNCTION refund_steps_change(old_rows orders[], new_rows orders[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    WITH changed AS (
        SELECT -1 AS sign, * FROM unnest(old_rows) UNION ALL SELECT 1, * FROM unnest(new_rows)
    ), steps AS MATERIALIZED (
        SELECT c.sign, c.id, s.at, coalesce(c.currency, '') AS currency, s.amount, s.refunds
          FROM changed AS c
         CROSS JOIN LATERAL refund_steps_of(c.refund_ledger, c.payment_status, c.amount_refunded, c.refunded_at) AS s
         WHERE c.refund_ledger <> '{}' OR c.refunded_at IS NOT NULL
    ), moved AS MATERIALIZED (
        SELECT id, at, currency, amount, refunds, sum(sign) AS sign
          FROM steps
         GROUP BY 1, 2, 3, 4, 5
        HAVING sum(sign) <> 0
    ), touched AS MATERIALIZED (
        SELECT DISTINCT id, at FROM moved
    ), gone AS (
        DELETE FROM refund_steps AS r USING touched AS t WHERE r.order_id = t.id AND r.at = t.at
    ), kept AS (
        INSERT INTO refund_steps (order_id, at, amount, refunds, currency)
        SELECT s.id, s.at, s.amount, s.refunds, s.currency
          FROM steps AS s JOIN touched AS t ON t.id = s.id AND t.at = s.at
         WHERE s.sign > 0
         ORDER BY 1, 2
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

-- The orders stored before: the steps of every order with a ledger derived again, and the rollups moved by the
-- difference (what a rebuild computes, without one).
WITH old AS (
    DELETE FROM refund_steps AS r USING orders AS o
     WHERE r.order_id = o.id AND o.refund_ledger <> '{}'
    RETURNING -1 AS sign, r.at, r.currency, r.amount, r.refunds
), new AS (
    INSERT INTO refund_steps (order_id, at, amount, refunds, currency)
    SELECT o.id, s.at, s.amount, s.refunds, coalesce(o.currency, '')
      FROM orders AS o
     CROSS JOIN LATERAL refund_steps_of(o.refund_ledger, o.payment_status, o.amount_refunded, o.refunded_at) AS s
     WHERE o.refund_ledger <> '{}'
    RETURNING 1 AS sign, at, currency, amount, refunds
), moved AS (
    SELECT * FROM old UNION ALL SELECT * FROM new
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
