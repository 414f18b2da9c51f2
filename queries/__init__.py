"""SQL constants and one typed async function per query; no Slack, no formatting."""
