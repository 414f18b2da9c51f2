"""The Slack App Home tab: what it shows (render) and when it is published again (publisher)."""
