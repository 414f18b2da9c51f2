-- Reactivation is a customer's, not a subscription's (ChartMogul, Baremetrics: MRR from a customer who had paid,
-- churned, and pays again). Stripe cannot revive a canceled subscription, so a customer who comes back does so with
-- a new one, and 0034's paid_before (per subscription_id) booked that return as new MRR.
--
-- paid_before is now also true where the subscription's customer (`subscriptions.customer`) paid on another
-- subscription before this snapshot and was paying on none of them just before it (each one's last snapshot
-- before it at 0): a customer still paying elsewhere who adds a subscription is not back, so that stays new MRR
-- (ChartMogul would call it expansion; the ledger's movements are per subscription). Since one subscription's
-- snapshots now move another's, a refresh takes in every subscription of the customers it touches, and a
-- subscription's customer being set (its state row is written after its snapshots, bot/subscriptions/apply.py)
-- refreshes them too. Then everything is rebuilt once, so the stored figures equal a rebuild.

CREATE INDEX subscriptions_by_customer ON subscriptions (customer) WHERE customer IS NOT NULL;

-- Whether the customer of subscription `sub` paid on another subscription before `moment` and pays on none of
-- them just before it.
CREATE FUNCTION customer_returning(sub text, moment timestamptz) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
               SELECT FROM subscriptions AS me
                 JOIN subscriptions AS o ON o.customer = me.customer AND o.id <> me.id
                WHERE me.id = sub
                  AND EXISTS (SELECT FROM subscription_events AS p
                               WHERE p.subscription_id = o.id AND p.at < moment AND (p.mrr > 0 OR p.before_mrr > 0)))
       AND NOT EXISTS (
               SELECT FROM subscriptions AS me
                 JOIN subscriptions AS o ON o.customer = me.customer AND o.id <> me.id
                CROSS JOIN LATERAL (SELECT p.mrr FROM subscription_events AS p
                                     WHERE p.subscription_id = o.id AND p.at < moment
                                     ORDER BY p.at DESC, p.rank DESC, p.event_id DESC
                                     LIMIT 1) AS last
                WHERE me.id = sub AND last.mrr > 0)
$$;

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
       SET prev_mrr = c.prev_mrr, paid_before = c.paid_before
      FROM (SELECT w.event_id, w.prev_mrr,
                   CASE WHEN w.own THEN true ELSE customer_returning(w.subscription_id, w.at) END AS paid_before
              FROM (SELECT event_id, subscription_id, at,
                           lag(mrr) OVER w AS prev_mrr,
                           coalesce(bool_or(mrr > 0) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), false)
                           OR coalesce(bool_or(before_mrr > 0) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
                                       false) AS own
                      FROM subscription_events
                     WHERE subscription_id = ANY(subs)
                    WINDOW w AS (PARTITION BY subscription_id ORDER BY at, rank, event_id)) AS w) AS c
     WHERE e.event_id = c.event_id
       AND (e.prev_mrr IS DISTINCT FROM c.prev_mrr OR e.paid_before IS DISTINCT FROM c.paid_before);
END $$;

-- A subscription's customer set or changed: its snapshots and its customer's other subscriptions' move.
CREATE FUNCTION subscriptions_customer_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM subscription_movements_refresh(ARRAY(SELECT id FROM new_rows WHERE customer IS NOT NULL));
    ELSE
        PERFORM subscription_movements_refresh(ARRAY(
            SELECT n.id FROM new_rows AS n JOIN old_rows AS o USING (id)
             WHERE n.customer IS DISTINCT FROM o.customer));
        -- The customer it left: its other subscriptions lose this one's history.
        PERFORM subscription_movements_refresh(ARRAY(
            SELECT s.id FROM subscriptions AS s
             WHERE s.customer IN (SELECT o.customer FROM new_rows AS n JOIN old_rows AS o USING (id)
                                   WHERE n.customer IS DISTINCT FROM o.customer AND o.customer IS NOT NULL)));
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER subscriptions_customer_inserted AFTER INSERT ON subscriptions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION subscriptions_customer_changed();
CREATE TRIGGER subscriptions_customer_updated AFTER UPDATE ON subscriptions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION subscriptions_customer_changed();

SELECT mrr_movements_rebuild();
