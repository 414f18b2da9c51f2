"""Settings from Slack: the Settings view's values, their storage and audit, and the live holder every replica
reads, so a change made through one replica is in force on all of them within a second, without a restart.

The environment (and ALERT_RULES_FILE) are the defaults; a value stored from the Settings view wins over them.
"""
