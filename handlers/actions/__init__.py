"""Interactive components: buttons on the bot's messages."""
