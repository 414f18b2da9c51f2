"""Daily reports: when they are due (schedule), their figures (figures), chart (chart) and posting (reporter)."""
