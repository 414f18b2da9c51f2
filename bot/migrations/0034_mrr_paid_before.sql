-- A subscription first seen after install that lapses and comes back is reactivation MRR, not new MRR: its first
-- snapshot's event says what it was paying just before (before_mrr, 0015), and that is paying before too. 0022's
-- paid_before read only the MRR of the earlier snapshots, so a subscriber seen first at its churn (past_due →
-- unpaid, before_mrr $19.00, MRR 0) and then paying again (unpaid → active) was booked as new MRR.
--
-- paid_before is now: an earlier snapshot had MRR, or this or an earlier snapshot's event says the MRR just before
-- it was more than 0 (a snapshot's own before_mrr counts: its event says it had paid, whatever the ledger missed
-- in between). Since before_mrr now moves paid_before, an update changing it (the discounts job recomputes it,
-- 0017) refreshes its subscription like a change of MRR or time does. Then everything is rebuilt once.

CREATE OR REPLACE FUNCTION subscription_movements_refresh(subs text[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF cardinality(subs) = 0 THEN  -- the refresh's own update fires the update trigger: it ends here
        RETURN;
    END IF;
    UPDATE subscription_events AS e
       SET prev_mrr = c.prev_mrr, paid_before = c.paid_before
      FROM (SELECT event_id,
                   lag(mrr) OVER w AS prev_mrr,
                   coalesce(bool_or(mrr > 0) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), false)
                   OR coalesce(bool_or(before_mrr > 0) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
                               false) AS paid_before
              FROM subscription_events
             WHERE subscription_id = ANY(subs)
            WINDOW w AS (PARTITION BY subscription_id ORDER BY at, rank, event_id)) AS c
     WHERE e.event_id = c.event_id
       AND (e.prev_mrr IS DISTINCT FROM c.prev_mrr OR e.paid_before IS DISTINCT FROM c.paid_before);
END $$;

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
             WHERE (n.mrr, n.before_mrr, n.at, n.rank, n.subscription_id)
                   IS DISTINCT FROM (o.mrr, o.before_mrr, o.at, o.rank, o.subscription_id)
            UNION
            SELECT o.subscription_id
              FROM new_rows AS n JOIN old_rows AS o USING (event_id)
             WHERE n.subscription_id IS DISTINCT FROM o.subscription_id));
    END IF;
    RETURN NULL;
END $$;

SELECT mrr_movements_rebuild();
