"""The value every builder returns, and Slack's Block Kit limits as named constants."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# https://api.slack.com/reference/block-kit/blocks — limits the API enforces with invalid_blocks.
MAX_BLOCKS_MESSAGE = 50
MAX_BLOCKS_HOME = 100
MAX_SECTION_TEXT = 3000
MAX_SECTION_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_BUTTON_TEXT = 75
MAX_ACTION_ELEMENTS = 25
# chat.postMessage truncates `text` beyond 40,000 characters; keep the fallback well short of it.
MAX_FALLBACK_TEXT = 4000

Block = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Message:
    """A Slack message: the plain `text` fallback (notifications, screen readers) and its blocks."""

    text: str
    blocks: list[Block] = field(default_factory=list)

    def as_payload(self) -> dict[str, Any]:
        """The JSON body fields chat.postMessage and incoming webhooks both accept."""
        return {"text": self.text, "blocks": self.blocks}


def truncate(text: str, limit: int) -> str:
    """Cut `text` to `limit` characters, marking the cut with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
