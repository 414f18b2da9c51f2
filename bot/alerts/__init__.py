"""Alerts: rules as data, their evaluation, and an Alertmanager-style lifecycle in Slack."""
