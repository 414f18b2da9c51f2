-- When a dispute's stored status was true: the time of the event that told it. Stripe retries, so a dispute's
-- charge.dispute.closed (won, lost) may arrive before the charge.dispute.created it follows; the intake upserts each
-- event's status (queries/intake.py UPSERT_DISPUTES) and the newer one wins whatever the order of arrival. NULL (rows
-- stored before, a row typed at psql) reads as created_at: a closed event already applied to such a row kept its
-- status, and an older event of it is a redelivery, which the intake never applies twice.
ALTER TABLE disputes ADD COLUMN status_at timestamptz;
