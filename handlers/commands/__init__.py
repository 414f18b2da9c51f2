"""Slash commands: one module per command, plus the answers they share."""
