"""The outbox worker and its senders: each queued message reaches Slack once, paced per channel, coalesced."""
