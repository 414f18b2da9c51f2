"""What the bot answers when asked: snapshots of sales, errors and health, as Slack messages, Share posts and JSON."""
