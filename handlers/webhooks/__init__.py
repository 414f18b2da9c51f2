"""Inbound webhooks: one module per source."""
