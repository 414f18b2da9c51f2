-- The MRR summary's subscribers (queries/mrr.py, read by every /sales, App Home, dashboard and JSON view) without
-- sorting every subscription. Since 0053 they are distinct customers: count(DISTINCT coalesce(customer, id))
-- sorted every subscription's text key on each read (19.6 ms of /sales at 20,000 subscriptions, 1.4-1.5x its p50 at 1 M
-- orders). The paying rows, in (currency, customer) order with their MRR, answer it from the index alone; the
-- currencies holding only zero-MRR subscriptions are found one index probe each. subscriptions_counted (0015:
-- currency, of paying rows) is the first one's leading column under the same predicate, and nothing else reads it.
-- Its own transaction, apart from 0056: building these and dropping that lock `subscriptions` (writes, then all
-- reads) until commit, milliseconds here.
CREATE INDEX subscriptions_paying ON subscriptions (currency, customer) INCLUDE (mrr_units) WHERE mrr_units > 0;
CREATE INDEX subscriptions_unpaid_currency ON subscriptions (currency) WHERE mrr_units = 0;
DROP INDEX subscriptions_counted;
