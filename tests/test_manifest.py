"""manifest.yml is a valid Slack app manifest that declares what the bot needs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.reference import FIXTURES_DIR

MANIFEST = Path(__file__).resolve().parents[1] / "manifest.yml"
SCHEMAS = FIXTURES_DIR / "slack" / "manifest-schema"


def _schema(major: int) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / f"manifest.schema.{major}.0.0.json").read_text())
    return schema


def _manifest() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(MANIFEST.read_text())
    return data


def test_manifest_validates_against_slacks_schema() -> None:
    """manifest.yml has no error under the official manifest schema of its major version."""
    manifest = _manifest()
    validator = jsonschema.Draft7Validator(_schema(manifest["_metadata"]["major_version"]))
    assert [e.message for e in validator.iter_errors(manifest)] == []


@pytest.mark.parametrize("name", ["v1.manifest.invalid.json", "v2.manifest.invalid.json"])
def test_schema_check_can_fail(name: str) -> None:
    """The same validation rejects Slack's own known-invalid manifests, so the check above is real."""
    invalid = json.loads((SCHEMAS / name).read_text())
    validator = jsonschema.Draft7Validator(_schema(int(name[1])))
    assert list(validator.iter_errors(invalid))


def test_manifest_declares_commands_scopes_interactivity_and_home() -> None:
    """The three commands point at /slack/events; posting, commands, files and channel scopes; buttons; App Home."""
    manifest = _manifest()
    commands = {c["command"]: c for c in manifest["features"]["slash_commands"]}
    assert set(commands) == {"/sales", "/errors", "/health"}
    assert all(c["url"].endswith("/slack/events") and c["usage_hint"] for c in commands.values())
    assert {"chat:write", "commands", "files:write"} <= set(manifest["oauth_config"]["scopes"]["bot"])
    # joining public channels, and telling them from private ones: tests/test_channels.py
    assert {"channels:join", "channels:read", "groups:read"} <= set(manifest["oauth_config"]["scopes"]["bot"])
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert "app_home_opened" in manifest["settings"]["event_subscriptions"]["bot_events"]
