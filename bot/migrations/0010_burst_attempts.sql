-- A coalesced message covers every sale waiting for its channel, however many. The set it covers is written
-- with its delivery attempt (committed on its own before the call to Slack, like every attempt): if the
-- process dies between Slack accepting the message and the worker recording it, the next attempt finds the
-- message by its metadata and settles exactly the sales it announced, neither fewer nor more. NULL for an
-- attempt at one message.
ALTER TABLE delivery_attempts ADD COLUMN covers bigint[];
-- A burst's retries are scheduled on its attempt, not on each of its (maybe 50,000) sales: a retry every few
-- seconds through a long outage writes one row, not the whole backlog.
ALTER TABLE delivery_attempts ADD COLUMN retry_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE delivery_attempts ADD COLUMN failures integer NOT NULL DEFAULT 0;
