"""Slack Events API listeners (App Home)."""
