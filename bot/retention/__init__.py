"""Data retention: how long what grows with every event, message and probe is kept (policy.py), and the daily job
that empties or deletes the rest (job.py)."""
