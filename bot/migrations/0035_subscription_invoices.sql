-- Subscription invoices paid (invoice.paid naming a subscription), and whether money was taken (a trial's first
-- invoice is paid at $0). A trial's first real payment is a `subscription_cycle` invoice, a renewal's billing
-- reason, yet it is the subscription's first sale: a cycle invoice renews only a subscription that had paid before
-- (bot/subscriptions/first_payments.py). Orders do not keep their subscription, so an earlier payment of one is
-- found here. Kept from this migration on; before it, the snapshots (subscription_events) tell what was paying.
CREATE TABLE subscription_invoices (
    invoice_id      text PRIMARY KEY,
    subscription_id text        NOT NULL,
    paid_at         timestamptz NOT NULL,
    paid            boolean     NOT NULL
);
CREATE INDEX subscription_invoices_by_subscription ON subscription_invoices (subscription_id, paid_at);
