"""Test helper: check a built message against the Block Kit JSON Schema and Slack's message limits."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from bot.blocks.message import (
    MAX_BLOCKS_HOME,
    MAX_BLOCKS_MESSAGE,
    MAX_CONTEXT_ELEMENTS,
    MAX_FALLBACK_TEXT,
    MAX_FIELD_TEXT,
    MAX_HEADER_TEXT,
    MAX_SECTION_FIELDS,
    MAX_SECTION_TEXT,
    Message,
)
from tests.reference import FIXTURES_DIR

SCHEMA_PATH = FIXTURES_DIR / "slack" / "slack-block-kit.schema.json"


@cache  # the schema is ~100 KB of $defs: parse and check it once per test session
def _validator() -> Draft202012Validator:
    """The validator for the schema, which describes a top-level array of blocks (not a message)."""
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def assert_valid_message(msg: Message | Mapping[str, Any]) -> None:
    """Fail unless `msg` (a Message or a chat.postMessage body) is valid Block Kit within Slack's limits."""
    payload = msg.as_payload() if isinstance(msg, Message) else dict(msg)
    text = payload.get("text")
    assert isinstance(text, str) and text.strip(), f"missing text fallback: {text!r}"
    assert len(text) <= MAX_FALLBACK_TEXT, f"text fallback is {len(text)} characters"
    blocks = payload.get("blocks") or []
    assert len(blocks) <= MAX_BLOCKS_MESSAGE, f"{len(blocks)} blocks, a message allows {MAX_BLOCKS_MESSAGE}"
    if not blocks:
        return  # a text-only message; the schema requires at least one block in its array
    error = best_match(_validator().iter_errors(blocks))
    assert error is None, f"invalid Block Kit at {list(error.absolute_path)}: {error.message}"
    for index, block in enumerate(blocks):
        _assert_limits(index, block)


def assert_valid_view(view: Mapping[str, Any]) -> None:
    """Fail unless `view` (views.publish's `view`) is a Home view of valid Block Kit within 100 blocks."""
    assert view.get("type") == "home", f"not a Home view: {view.get('type')!r}"
    blocks = view.get("blocks") or []
    assert 0 < len(blocks) <= MAX_BLOCKS_HOME, f"{len(blocks)} blocks, a Home tab allows {MAX_BLOCKS_HOME}"
    _assert_surface_blocks(blocks)


def _assert_surface_blocks(blocks: list[Mapping[str, Any]]) -> None:
    """A view's blocks: valid against the schema, block ids unique, every limit kept."""
    error = best_match(_validator().iter_errors(blocks))
    assert error is None, f"invalid Block Kit at {list(error.absolute_path)}: {error.message}"
    block_ids = [b["block_id"] for b in blocks if "block_id" in b]
    assert len(block_ids) == len(set(block_ids)), f"duplicate block_id in {block_ids}"
    for index, block in enumerate(blocks):
        _assert_limits(index, block)


def _assert_limits(index: int, block: Mapping[str, Any]) -> None:
    """Restate the limits this project relies on, so a schema that loosens them cannot hide a breach."""
    where = f"block {index} ({block.get('type')})"
    if block.get("type") == "header":
        assert block["text"]["type"] == "plain_text", f"{where}: headers take plain_text only"
        assert len(block["text"]["text"]) <= MAX_HEADER_TEXT, f"{where}: header over {MAX_HEADER_TEXT}"
    elif block.get("type") == "section":
        if "text" in block:
            assert len(block["text"]["text"]) <= MAX_SECTION_TEXT, f"{where}: text over {MAX_SECTION_TEXT}"
        fields = block.get("fields", [])
        assert len(fields) <= MAX_SECTION_FIELDS, f"{where}: {len(fields)} fields"
        for field in fields:
            assert len(field["text"]) <= MAX_FIELD_TEXT, f"{where}: field over {MAX_FIELD_TEXT}"
    elif block.get("type") == "context":
        assert len(block["elements"]) <= MAX_CONTEXT_ELEMENTS, f"{where}: too many elements"


MAX_MODAL_TITLE = 24  # https://docs.slack.dev/reference/views/modal-views: title, submit and close up to 24


def assert_valid_modal(view: Mapping[str, Any]) -> None:
    """Fail unless `view` (views.open's `view`) is a modal of valid Block Kit: at most 100 blocks, a title and
    buttons of at most 24 characters, unique block ids, and a submit button whenever it has inputs."""
    assert view.get("type") == "modal", f"not a modal: {view.get('type')!r}"
    for key in ("title", "submit", "close"):
        if key in view or key == "title":
            text = view[key]
            assert text.get("type") == "plain_text", f"{key} must be plain_text"
            assert 0 < len(text["text"]) <= MAX_MODAL_TITLE, f"{key} {text['text']!r} over {MAX_MODAL_TITLE}"
    blocks = view.get("blocks") or []
    assert 0 < len(blocks) <= MAX_BLOCKS_HOME, f"{len(blocks)} blocks, a modal allows {MAX_BLOCKS_HOME}"
    if any(b.get("type") == "input" for b in blocks):
        assert "submit" in view, "a modal with inputs needs a submit button"
    _assert_surface_blocks(blocks)
