"""Making user-controlled text safe to put inside Slack mrkdwn."""

from __future__ import annotations


def escape_mrkdwn(s: str) -> str:
    """Escape `&`, `<` and `>` so text like `<!channel>` or `<https://x|y>` shows literally."""
    # Slack asks for exactly these three and nothing more; `&` goes first so entities are not doubled.
    # https://api.slack.com/reference/surfaces/formatting#escaping
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
