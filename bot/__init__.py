"""salespulse: a Slack bot that watches an online store's sales."""

__version__ = "0.1.0"
