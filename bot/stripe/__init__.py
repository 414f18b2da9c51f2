"""Stripe webhooks: what salespulse needs to trust and understand what Stripe sends."""
