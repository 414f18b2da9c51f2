"""Benchmarks run against a live bot process, a fake Slack and the machine's PostgreSQL."""
