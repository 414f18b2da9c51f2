-- 0053's classification of the history stored before it, in a transaction of its own: 0053 holds ACCESS EXCLUSIVE
-- locks on subscriptions and subscription_events for its column additions only (milliseconds), where rebuilding
-- every flag and day there held them for seconds (about 9 s at 0.92 M snapshots of 20,000 subscriptions), stalling
-- every /sales and Home read too. Here snapshot writes wait (the intake's inbox answers webhooks meanwhile), reads
-- do not: a snapshot stored during the refresh would be classified by its trigger against rows this statement then
-- overwrites from its older view of the ledger (the intake locks subscriptions one by one, not per customer).
--
-- Only a subscription whose customer holds another can change: others_paying is kept only there (every other
-- snapshot keeps false, as the three-argument movement had it), and seq 0 keeps the order the ledger had. The
-- refresh's own UPDATE moves the days of the snapshots it changes (0022's trigger), so flags and days end as a full
-- mrr_movements_rebuild() leaves them (compared by md5 on bench/mrr.py's ledger with customers holding two and
-- three subscriptions), in about half its time. A database that ran 0053 with the full rebuild finds nothing to
-- change.
LOCK TABLE subscription_events IN SHARE ROW EXCLUSIVE MODE;
SELECT subscription_movements_refresh(ARRAY(
    SELECT id FROM subscriptions
     WHERE customer IN (SELECT customer FROM subscriptions WHERE customer IS NOT NULL
                         GROUP BY customer HAVING count(*) > 1)));
