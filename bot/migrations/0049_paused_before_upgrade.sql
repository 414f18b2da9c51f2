-- What the release before 0042 stored about paused subscriptions, stored as the intake stores it now (found by an
-- upgrade review). The snapshots themselves were never revisited: 0043 recomputed only paid_before.
--
-- A subscription's payment collection paused (`pause_collection` set: Stripe keeps it `active` and charges nothing,
-- bot/stripe/subscriptions.py _paused) was stored at its full MRR by that release, so one still paused stayed in MRR
-- after the upgrade, and resuming it was announced as "back" while the figures had never seen it leave. Its newest
-- snapshot (the one its state row carries) whose logged event body has pause_collection set now counts 0, as the
-- state row does; its pricing, if a Discount named by id waits for the discounts job, is marked not counted, so the
-- job does not put the MRR back. Its earlier snapshots keep the history that release booked (a pause since resumed
-- moved nothing then, and moves nothing now).
--
-- A trial Stripe paused at its end for want of a card (trial_settings.end_behavior.missing_payment_method = pause),
-- then canceled, kept on its deletion snapshot the before_mrr that release gave it (its price: "it was paying"),
-- though it never paid: a customer of it subscribing later was booked as back (reactivation) instead of new. Such a
-- deletion now starts from 0, as bot/subscriptions/apply.py _never_paid decides: its body says the trial ended
-- before it did with that end behaviour, and the subscription has no invoice that took money and no other snapshot
-- showing it paying (MRR, or what its event says came before, above 0).
--
-- Only bodies still logged can tell (retention empties old ones, 0036); a snapshot without one is left as it is.
-- Each UPDATE fires subscription_events' statement triggers (0022, 0034, 0043), which move the days and refresh the
-- movements of exactly the subscriptions changed, and of their customers' other ones: the stored figures equal a
-- rebuild (tests/test_upgrade_paused.py), without rebuilding a whole ledger.

WITH paused AS (
    SELECT e.event_id, e.subscription_id
      FROM subscriptions AS s
      JOIN subscription_events AS e ON e.event_id = s.last_event_id
      JOIN webhook_logs AS w ON w.source = 'stripe' AND w.event_id = e.event_id
     WHERE e.mrr_units > 0 AND jsonb_typeof(w.payload #> '{data,object,pause_collection}') = 'object'
), snapshots AS (
    UPDATE subscription_events AS e
       SET mrr_units = 0,
           pricing = CASE WHEN e.pricing IS NULL THEN NULL ELSE jsonb_set(e.pricing, '{counted}', 'false') END
      FROM paused AS p
     WHERE e.event_id = p.event_id
)
UPDATE subscriptions AS s
   SET mrr_units = 0, updated_at = now()
  FROM paused AS p
 WHERE s.id = p.subscription_id AND s.last_event_id = p.event_id AND s.mrr_units <> 0;

UPDATE subscription_events AS e
   SET before_mrr_units = 0,
       before_pricing = CASE WHEN e.before_pricing IS NULL THEN NULL
                             ELSE jsonb_set(e.before_pricing, '{counted}', 'false') END
  FROM webhook_logs AS w
 WHERE w.source = 'stripe' AND w.event_id = e.event_id
   AND w.event_type = 'customer.subscription.deleted' AND e.before_mrr_units > 0
   AND w.payload #>> '{data,object,status}' IN ('canceled', 'incomplete_expired')
   AND w.payload #>> '{data,object,trial_settings,end_behavior,missing_payment_method}' = 'pause'
   AND jsonb_typeof(w.payload #> '{data,object,trial_end}') = 'number'
   AND jsonb_typeof(w.payload #> '{data,object,ended_at}') = 'number'
   AND (w.payload #>> '{data,object,trial_end}')::numeric < (w.payload #>> '{data,object,ended_at}')::numeric
   AND NOT EXISTS (SELECT FROM subscription_invoices AS i WHERE i.subscription_id = e.subscription_id AND i.paid)
   AND NOT EXISTS (SELECT FROM subscription_events AS p
                    WHERE p.subscription_id = e.subscription_id AND p.event_id <> e.event_id
                      AND (p.mrr_units > 0 OR p.before_mrr_units > 0));
