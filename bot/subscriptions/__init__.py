"""Subscriptions: Stripe's customer.subscription.* events → each subscription's state, its MRR and the MRR ledger,
and the message each change earns (new subscriber, plan change, cancellation scheduled, churned)."""
