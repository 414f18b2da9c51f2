"""Stripe: signatures, payload parsing across API versions, the Events API client, polling sync and backfill."""
