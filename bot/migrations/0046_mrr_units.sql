-- MRR kept finer than a minor unit (a review: three $100.00-a-year subscribers made $24.99 a month). Each snapshot's
-- MRR was rounded to a minor unit (833 for $100.00 a year ÷ 12) before the sums added the roundings up, so the error
-- grew with the number of subscribers. From here every stored MRR — subscription_events.mrr, before_mrr and
-- prev_mrr, subscriptions.mrr and mrr_movement_days' amounts — is in MRR units: 12,000,000 to a minor unit a month,
-- i.e. a subscription's amount a year in millionths of a minor unit (bot/subscriptions/mrr.py PER_MINOR: exact for
-- prices a month, a year, every 3 or 6 months, a week, every 2 weeks, a day). Sums are rounded once, half up, to a
-- minor unit where they are shown: mrr_minor().
--
-- What is stored so far keeps its rounding (a snapshot does not keep its prices): its minor units become MRR units
-- as they are. A subscription's next event (a renewal's customer.subscription.updated at the latest) stores its
-- exact MRR, and its ledger moves by what the rounding had lost (a third of a cent a month, for $100.00 a year).
--
-- Replicas older than this migration read and write minor units. So that one still running during a rolling deploy
-- fails rather than corrupts (MRR shown 12,000,000 times too high; snapshots written in minor units, which the
-- ledger would book as lasting contractions and expansions), the columns whose unit changed are renamed:
-- subscription_events.mrr, before_mrr and prev_mrr become mrr_units, before_mrr_units and prev_mrr_units,
-- subscriptions.mrr becomes mrr_units. An old replica's statements naming them fail ("column does not exist", not a
-- refusal its intake would log as an error): a webhook it takes with a subscription event is answered 500 and its
-- batch rolls back (Stripe retries any answer but a 2xx; a replica with this migration takes it), events it put in
-- the inbox stay there for any replica to apply, its discounts job retries later, its /sales and reports fail in
-- their MRR part; none writes or shows a wrong figure (tests/test_mrr_units_rollout.py).
-- mrr_movement_days keeps its column names: the triggers alone write it, and old code reads it only in the MRR
-- summary, one statement that also names subscription_events.mrr, so it fails whole. The functions naming the
-- renamed columns (their latest definitions: 0022, 0034, 0043) are re-created below with the new names.
--
-- One subscription's MRR stays a bigint (up to 768 billion minor units a month); a day's movements summed over a
-- currency's subscriptions may not, so mrr_movement_days keeps its amounts as numeric, as sum() returns them. Then
-- everything is rebuilt once (as 0043), so the stored figures equal a rebuild.

-- MRR units (a sum, or a change) in minor units a month: half up, a change down by as much as one up.
CREATE FUNCTION mrr_minor(units numeric) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT (sign(units) * div(abs(units) + 6000000, 12000000))::bigint $$;

ALTER TABLE mrr_movement_days
    ALTER COLUMN new TYPE numeric, ALTER COLUMN reactivation TYPE numeric, ALTER COLUMN expansion TYPE numeric,
    ALTER COLUMN contraction TYPE numeric, ALTER COLUMN churned TYPE numeric, ALTER COLUMN delta TYPE numeric;

ALTER TABLE subscription_events RENAME COLUMN mrr TO mrr_units;
ALTER TABLE subscription_events RENAME COLUMN before_mrr TO before_mrr_units;
ALTER TABLE subscription_events RENAME COLUMN prev_mrr TO prev_mrr_units;
ALTER TABLE subscriptions RENAME COLUMN mrr TO mrr_units;

-- 0022's, with the new names (a statement's changed rows, out and in, summed into the days).
CREATE OR REPLACE FUNCTION mrr_movement_days_change(old_rows subscription_events[], new_rows subscription_events[])
    RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    WITH changed AS (
        SELECT -1 AS sign, * FROM unnest(old_rows) UNION ALL SELECT 1, * FROM unnest(new_rows)
    )
    INSERT INTO mrr_movement_days AS d (day, currency, new, reactivation, expansion, contraction, churned,
                                        churned_count, delta, active_delta)
    SELECT date_trunc('day', c.at, 'UTC'), c.currency, sum(c.sign * m.new), sum(c.sign * m.reactivation),
           sum(c.sign * m.expansion), sum(c.sign * m.contraction), sum(c.sign * m.churned),
           sum(c.sign * m.churned_count), sum(c.sign * m.delta), sum(c.sign * m.active_delta)
      FROM changed AS c
     CROSS JOIN LATERAL mrr_movement(c.mrr_units, coalesce(c.prev_mrr_units, c.before_mrr_units, 0), c.paid_before)
                        AS m
     GROUP BY 1, 2
     ORDER BY 1, 2  -- a day with only zero movements keeps a row: its currency had snapshots, as a scan would see
    ON CONFLICT (day, currency) DO UPDATE
       SET new = d.new + EXCLUDED.new, reactivation = d.reactivation + EXCLUDED.reactivation,
           expansion = d.expansion + EXCLUDED.expansion, contraction = d.contraction + EXCLUDED.contraction,
           churned = d.churned + EXCLUDED.churned, churned_count = d.churned_count + EXCLUDED.churned_count,
           delta = d.delta + EXCLUDED.delta, active_delta = d.active_delta + EXCLUDED.active_delta;
END $$;

-- 0034's, with the new names.
CREATE OR REPLACE FUNCTION subscription_events_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM mrr_movement_days;
    ELSIF TG_OP = 'INSERT' THEN
        PERFORM mrr_movement_days_change('{}', ARRAY(SELECT n::subscription_events FROM new_rows AS n));
        PERFORM subscription_movements_refresh(ARRAY(SELECT DISTINCT subscription_id FROM new_rows));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM mrr_movement_days_change(ARRAY(SELECT o::subscription_events FROM old_rows AS o), '{}');
        PERFORM subscription_movements_refresh(ARRAY(SELECT DISTINCT subscription_id FROM old_rows));
    ELSE
        PERFORM mrr_movement_days_change(ARRAY(SELECT o::subscription_events FROM old_rows AS o),
                                         ARRAY(SELECT n::subscription_events FROM new_rows AS n));
        PERFORM subscription_movements_refresh(ARRAY(
            SELECT n.subscription_id
              FROM new_rows AS n JOIN old_rows AS o USING (event_id)
             WHERE (n.mrr_units, n.before_mrr_units, n.at, n.rank, n.subscription_id)
                   IS DISTINCT FROM (o.mrr_units, o.before_mrr_units, o.at, o.rank, o.subscription_id)
            UNION
            SELECT o.subscription_id
              FROM new_rows AS n JOIN old_rows AS o USING (event_id)
             WHERE n.subscription_id IS DISTINCT FROM o.subscription_id));
    END IF;
    RETURN NULL;
END $$;

-- 0043's, with the new names.
CREATE OR REPLACE FUNCTION customer_returning(sub text, moment timestamptz) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
               SELECT FROM subscriptions AS me
                 JOIN subscriptions AS o ON o.customer = me.customer AND o.id <> me.id
                WHERE me.id = sub
                  AND EXISTS (SELECT FROM subscription_events AS p
                               WHERE p.subscription_id = o.id AND p.at < moment
                                 AND (p.mrr_units > 0 OR p.before_mrr_units > 0)))
       AND NOT EXISTS (
               SELECT FROM subscriptions AS me
                 JOIN subscriptions AS o ON o.customer = me.customer AND o.id <> me.id
                CROSS JOIN LATERAL (SELECT p.mrr_units FROM subscription_events AS p
                                     WHERE p.subscription_id = o.id AND p.at < moment
                                     ORDER BY p.at DESC, p.rank DESC, p.event_id DESC
                                     LIMIT 1) AS last
                WHERE me.id = sub AND last.mrr_units > 0)
$$;

-- 0043's, with the new names.
CREATE OR REPLACE FUNCTION subscription_movements_refresh(subs text[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF cardinality(subs) = 0 THEN  -- the refresh's own update fires the update trigger: it ends here
        RETURN;
    END IF;
    subs := ARRAY(SELECT unnest(subs)
                  UNION
                  SELECT s.id
                    FROM subscriptions AS s
                   WHERE s.customer IN (SELECT customer FROM subscriptions WHERE id = ANY(subs)));
    UPDATE subscription_events AS e
       SET prev_mrr_units = c.prev_mrr_units, paid_before = c.paid_before
      FROM (SELECT w.event_id, w.prev_mrr_units,
                   CASE WHEN w.own THEN true ELSE customer_returning(w.subscription_id, w.at) END AS paid_before
              FROM (SELECT event_id, subscription_id, at,
                           lag(mrr_units) OVER w AS prev_mrr_units,
                           coalesce(bool_or(mrr_units > 0) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
                                    false)
                           OR coalesce(bool_or(before_mrr_units > 0)
                                           OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW), false) AS own
                      FROM subscription_events
                     WHERE subscription_id = ANY(subs)
                    WINDOW w AS (PARTITION BY subscription_id ORDER BY at, rank, event_id)) AS w) AS c
     WHERE e.event_id = c.event_id
       AND (e.prev_mrr_units IS DISTINCT FROM c.prev_mrr_units OR e.paid_before IS DISTINCT FROM c.paid_before);
END $$;

-- Scaled without the update trigger: the movements it would recompute are all rebuilt below.
ALTER TABLE subscription_events DISABLE TRIGGER subscription_events_updated;
UPDATE subscription_events
   SET mrr_units = mrr_units * 12000000, before_mrr_units = before_mrr_units * 12000000,
       prev_mrr_units = prev_mrr_units * 12000000
 WHERE mrr_units <> 0 OR before_mrr_units <> 0 OR prev_mrr_units <> 0;
ALTER TABLE subscription_events ENABLE TRIGGER subscription_events_updated;
-- subscriptions_customer_updated refreshes only where a customer changed: none here.
UPDATE subscriptions SET mrr_units = mrr_units * 12000000 WHERE mrr_units <> 0;

SELECT mrr_movements_rebuild();
