"""What the Settings modal showed when it was opened, carried in the view's `private_metadata`, so a save
changes only the fields the admin changed, and refuses a field another admin changed since (a stale modal
saved as a whole would put back every value it showed).

Each shown value is kept as a short fingerprint of (setting, value): a few hundred characters for every
setting and rule, well inside Slack's 3000 for `private_metadata`
(https://api.slack.com/reference/surfaces/views#modal).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any, Final

from bot.alerts.rules import RuleSet
from bot.blocks import settings as view
from bot.blocks.settings import SettingsForm
from bot.config import Settings
from bot.settings.form import SETTING_OF_CHANNEL
from bot.settings.values import RULE_PREFIX, current

log = logging.getLogger(__name__)

VERSION: Final = "v1:"
MARK_LENGTH: Final = 10  # hex digits: 40 bits, so two values of one setting never pass for each other
MAX_METADATA: Final = 3000  # Slack's limit on private_metadata

BLOCK_OF_KEY: Final = {
    **{key: view.channel_block(logical) for logical, key in SETTING_OF_CHANNEL.items()},
    "STORE_TIMEZONE": view.TZ, "BUSINESS_HOURS": view.HOURS_START, "BUSINESS_DAYS": view.DAYS,
    "MORNING_REPORT_AT": view.MORNING, "EVENING_REPORT_AT": view.EVENING, "QUIET_HOURS": view.QUIET_START,
    "SLASH_COMMAND_ALLOWED_USERS": view.READERS, "ALERT_RESPONDERS": view.RESPONDERS,
}


def _canonical(value: Any) -> Any:
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, int | float):
        return float(value)  # a threshold of 5 in the rules file reads back from the view as 5.0
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return str(value)


def mark(key: str, value: Any) -> str:
    """The fingerprint of one setting's stored value."""
    text = json.dumps([key, _canonical(value)], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:MARK_LENGTH]


def shown_metadata(settings: Settings, rules: RuleSet, form: SettingsForm) -> str:
    """The view's private_metadata: a fingerprint of every value shown, as stored and as the form reads back
    (a channel by the id the picker shows, the people pickers without user groups)."""
    marks = {mark(key, value) for key, value in current(settings, rules).items()}
    marks |= {mark(SETTING_OF_CHANNEL[c.logical], c.channel_id) for c in form.channels if c.channel_id}
    marks.add(mark("SLASH_COMMAND_ALLOWED_USERS", list(form.readers)))
    marks.add(mark("ALERT_RESPONDERS", [*form.responders, *form.responder_groups]))
    metadata = VERSION + "".join(sorted(marks))
    if len(metadata) > MAX_METADATA:  # some 290 settings and rules: saved against what is in force, as before
        log.warning("the Settings view shows too many values to remember them (%d characters)", len(metadata))
        return ""
    return metadata


def shown_marks(metadata: str | None) -> frozenset[str] | None:
    """The fingerprints a submitted view carries; None when it carries none (a view opened before they were)."""
    if not metadata or not metadata.startswith(VERSION):
        return None
    body = metadata.removeprefix(VERSION)
    return frozenset(body[i:i + MARK_LENGTH] for i in range(0, len(body), MARK_LENGTH))


def block_of(key: str, *, after: Any, before: Any) -> str:
    """The input block of the view that shows this setting (where an error about it goes)."""
    if key.startswith(RULE_PREFIX):
        name = key.removeprefix(RULE_PREFIX)
        if isinstance(after, Mapping) and isinstance(before, Mapping) and "threshold" in after \
                and _without_threshold(after) == _without_threshold(before):
            return view.threshold_block(name)
        return view.severity_block(name)
    return BLOCK_OF_KEY[key]


def _without_threshold(state: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in state.items() if k != "threshold"}
