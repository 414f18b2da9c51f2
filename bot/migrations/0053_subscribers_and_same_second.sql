-- Subscribers are customers, and one second's events of a subscription are put in the order Stripe made them (a
-- review of the MRR figures).
--
-- Subscribers. Stripe's billing analytics count "a subscriber with multiple subscriptions as one subscriber", who
-- churns "when all of a subscriber's subscriptions are canceled"; its new subscribers leave out existing ones adding
-- a subscription, whose MRR ChartMogul books as expansion. The ledger counted subscriptions. Each snapshot now also
-- keeps `others_paying`: whether its subscription's customer had another subscription paying, in the same currency,
-- just before it (each one's last snapshot before it, in the ledger's order). Where it did, a subscription starting
-- to pay is expansion (not new or reactivation MRR), one stopping is contraction (not churn: no subscriber lost),
-- and neither moves the count of subscribers (active_delta), which is now of customers. Only snapshots moving from
-- or to 0 need the flag; the others keep false. Amounts are unchanged: the MRR, and net new, are what they were.
--
-- Same second. Stripe's `created` has whole seconds and its event ids are not ordered in time, so two updates of one
-- subscription in one second (seats added one by one) were ordered by event id, often the wrong way round. Each
-- snapshot now has `seq`, its place among its subscription's snapshots of that second as the intake found it from
-- the events themselves (bot/subscriptions/order.py: the one whose previous_attributes match the other's object
-- comes after it), and the ledger's order is (at, rank, seq, event_id) everywhere; the state row keeps its event's
-- (`last_event_seq`). What is stored so far keeps seq 0: its order is the one it had. A second whose events do not
-- settle their order is queued in subscription_second_checks: with STRIPE_API_KEY the subscription is read again
-- (bot/stripe/second_order.py, run by the discounts job) and the event Stripe's current subscription matches is
-- put last, while that second is still the subscription's newest.
--
-- New columns with constant defaults: no table rewrite. mrr_movement() gets a four-argument form; the three-argument
-- one stays for a replica older than this migration during a rolling deploy (its /sales reads the old
-- classification of the edge days' snapshots until it is replaced; it writes nothing this migration would read
-- differently). Existing stores' history is re-classified by 0056, in a transaction of its own: a full rebuild
-- here held this migration's ACCESS EXCLUSIVE locks on both tables for seconds (about 9 s at 0.92 M snapshots of
-- 20,000 subscriptions; intake waits), where the column additions alone take milliseconds.

ALTER TABLE subscription_events ADD COLUMN seq smallint NOT NULL DEFAULT 0,
                                ADD COLUMN others_paying boolean NOT NULL DEFAULT false;
ALTER TABLE subscriptions ADD COLUMN last_event_seq smallint NOT NULL DEFAULT 0;

CREATE TABLE subscription_second_checks (
    subscription_id text        NOT NULL,
    at              timestamptz NOT NULL,  -- the second whose events did not settle their order
    queued_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subscription_id, at)
);

-- 0022's, a subscription among others of its paying customer's moving as the customer's MRR does.
CREATE FUNCTION mrr_movement(mrr bigint, prev bigint, paid_before boolean, others_paying boolean)
    RETURNS TABLE (new bigint, reactivation bigint, expansion bigint, contraction bigint, churned bigint,
                   churned_count bigint, delta bigint, active_delta bigint)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN prev = 0 AND mrr > 0 AND NOT paid_before AND NOT others_paying THEN mrr ELSE 0 END,
                 CASE WHEN prev = 0 AND mrr > 0 AND paid_before AND NOT others_paying THEN mrr ELSE 0 END,
                 CASE WHEN mrr > prev AND (prev > 0 OR others_paying) THEN mrr - prev ELSE 0 END,
                 CASE WHEN prev > 0 AND mrr < prev AND (mrr > 0 OR others_paying) THEN prev - mrr ELSE 0 END,
                 CASE WHEN prev > 0 AND mrr = 0 AND NOT others_paying THEN prev ELSE 0 END,
                 CASE WHEN prev > 0 AND mrr = 0 AND NOT others_paying THEN 1 ELSE 0 END,
                 mrr - prev,
                 CASE WHEN others_paying THEN 0 ELSE (mrr > 0)::int - (prev > 0)::int END $$;

-- 0046's, with the four-argument movement.
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
     CROSS JOIN LATERAL mrr_movement(c.mrr_units, coalesce(c.prev_mrr_units, c.before_mrr_units, 0), c.paid_before,
                                     c.others_paying) AS m
     GROUP BY 1, 2
     ORDER BY 1, 2  -- a day with only zero movements keeps a row: its currency had snapshots, as a scan would see
    ON CONFLICT (day, currency) DO UPDATE
       SET new = d.new + EXCLUDED.new, reactivation = d.reactivation + EXCLUDED.reactivation,
           expansion = d.expansion + EXCLUDED.expansion, contraction = d.contraction + EXCLUDED.contraction,
           churned = d.churned + EXCLUDED.churned, churned_count = d.churned_count + EXCLUDED.churned_count,
           delta = d.delta + EXCLUDED.delta, active_delta = d.active_delta + EXCLUDED.active_delta;
END $$;

-- 0046's, the ledger's order taking seq.
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
                                     ORDER BY p.at DESC, p.rank DESC, p.seq DESC, p.event_id DESC
                                     LIMIT 1) AS last
                WHERE me.id = sub AND last.mrr_units > 0)
$$;

-- Whether the customer of subscription `sub` has another subscription in `cur` paying just before the snapshot at
-- (moment, rnk, sq, evt): its last snapshot before it in the ledger's order (across subscriptions, so of two
-- subscriptions a customer starts in one second, one is new and the other expansion) has MRR.
CREATE FUNCTION customer_paying(sub text, cur text, moment timestamptz, rnk smallint, sq smallint, evt text)
    RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
               SELECT FROM subscriptions AS me
                 JOIN subscriptions AS o ON o.customer = me.customer AND o.id <> me.id
                CROSS JOIN LATERAL (SELECT p.mrr_units FROM subscription_events AS p
                                     WHERE p.subscription_id = o.id AND p.currency = cur
                                       AND (p.at, p.rank, p.seq, p.event_id) < (moment, rnk, sq, evt)
                                     ORDER BY p.at DESC, p.rank DESC, p.seq DESC, p.event_id DESC
                                     LIMIT 1) AS last
                WHERE me.id = sub AND last.mrr_units > 0)
$$;

-- 0046's, the ledger's order taking seq, and others_paying kept where the MRR moves from or to 0 and the
-- subscription's customer has other subscriptions (the common case, one each, asks nothing more).
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
       SET prev_mrr_units = c.prev_mrr_units, paid_before = c.paid_before, others_paying = c.others_paying
      FROM (SELECT w.event_id, w.prev_mrr_units,
                   CASE WHEN w.own THEN true ELSE customer_returning(w.subscription_id, w.at) END AS paid_before,
                   CASE WHEN w.siblings AND (coalesce(w.prev_mrr_units, w.before_mrr_units, 0) > 0) <> (w.mrr_units > 0)
                        THEN customer_paying(w.subscription_id, w.currency, w.at, w.rank, w.seq, w.event_id)
                        ELSE false END AS others_paying
              FROM (SELECT event_id, subscription_id, at, rank, seq, currency, mrr_units, before_mrr_units,
                           lag(mrr_units) OVER w AS prev_mrr_units,
                           coalesce(bool_or(mrr_units > 0) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
                                    false)
                           OR coalesce(bool_or(before_mrr_units > 0)
                                           OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW), false) AS own,
                           subscription_id IN (SELECT me.id FROM subscriptions AS me
                                                 JOIN subscriptions AS o ON o.customer = me.customer AND o.id <> me.id
                                                WHERE me.id = ANY(subs)) AS siblings
                      FROM subscription_events
                     WHERE subscription_id = ANY(subs)
                    WINDOW w AS (PARTITION BY subscription_id ORDER BY at, rank, seq, event_id)) AS w) AS c
     WHERE e.event_id = c.event_id
       AND (e.prev_mrr_units IS DISTINCT FROM c.prev_mrr_units OR e.paid_before IS DISTINCT FROM c.paid_before
            OR e.others_paying IS DISTINCT FROM c.others_paying);
END $$;

-- 0046's, a change of seq moving the snapshots' starts as a change of time does.
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
             WHERE (n.mrr_units, n.before_mrr_units, n.at, n.rank, n.seq, n.currency, n.subscription_id)
                   IS DISTINCT FROM (o.mrr_units, o.before_mrr_units, o.at, o.rank, o.seq, o.currency, o.subscription_id)
            UNION
            SELECT o.subscription_id
              FROM new_rows AS n JOIN old_rows AS o USING (event_id)
             WHERE n.subscription_id IS DISTINCT FROM o.subscription_id));
    END IF;
    RETURN NULL;
END $$;
