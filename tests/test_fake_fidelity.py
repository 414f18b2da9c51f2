"""The fake Slack in tests/fakes.py must answer as Slack does, or it hides defects."""

from __future__ import annotations

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes import FakeSlack


async def test_fake_chat_update_of_a_message_that_does_not_exist_is_refused(fake_slack: FakeSlack) -> None:
    """Slack answers chat.update of a ts it has no message for (deleted, or never posted) with
    ok:false, error message_not_found (https://docs.slack.dev/reference/methods/chat.update#errors)."""
    client = AsyncWebClient(token="xoxb-test", base_url=fake_slack.url, retry_handlers=[])
    with pytest.raises(SlackApiError) as refused:
        await client.chat_update(channel="C0ALERTS", ts="1700000000.999999", text="resolved")
    assert refused.value.response["error"] == "message_not_found"


async def test_fake_chat_update_changes_what_the_channel_shows(fake_slack: FakeSlack) -> None:
    """After chat.update, conversations.history shows the new text (the fake keeps the old one)."""
    fake_slack.channels["C0ALERTS"].bot_member = True
    client = AsyncWebClient(token="xoxb-test", base_url=fake_slack.url, retry_handlers=[])
    posted = await client.chat_postMessage(channel="C0ALERTS", text="firing")
    await client.chat_update(channel="C0ALERTS", ts=posted["ts"], text="resolved")
    history = await client.conversations_history(channel="C0ALERTS")
    assert [m["text"] for m in history["messages"]] == ["resolved"]
