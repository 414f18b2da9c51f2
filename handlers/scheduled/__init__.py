"""Scheduled jobs: what runs on the clock (alert evaluation, site probe, daily reports)."""
