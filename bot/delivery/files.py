"""File uploads with Slack's current two-step flow: files.getUploadURLExternal, POST the bytes, then
files.completeUploadExternal to share the file (in a message's thread). files.upload is retired:
https://docs.slack.dev/changelog/2024-04-a-better-way-to-upload-files-is-here-to-stay"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.delivery.channels import ChannelDirectory
from bot.delivery.senders import HOLD_ERRORS, PERMANENT_ERRORS, Status, server_error, slack_error

# Errors meaning "this app may not upload here" on top of the posting ones: no retry will help, so the
# report stays without its chart. https://docs.slack.dev/reference/methods/files.getUploadURLExternal
UPLOAD_PERMANENT_ERRORS: Final = PERMANENT_ERRORS | HOLD_ERRORS | frozenset({
    "not_allowed_token_type", "file_uploads_disabled", "file_uploads_except_images_disabled",
    "file_upload_size_restricted", "storage_limit_reached", "access_denied", "invalid_channel",
    "not_allowed", "posting_to_channel_denied",
})


@dataclass(frozen=True, slots=True)
class UploadResult:
    """How an upload ended: OK with the file id, or why not."""

    status: Status
    file_id: str | None = None
    error: str | None = None


def _slack_error(exc: SlackApiError) -> UploadResult:
    error = slack_error(exc)
    if error == "ratelimited":
        return UploadResult(Status.RATE_LIMITED, error=error)
    if not server_error(exc) and error in UPLOAD_PERMANENT_ERRORS:
        return UploadResult(Status.PERMANENT, error=error)
    return UploadResult(Status.TRANSIENT, error=error)


async def upload_file(client: AsyncWebClient, *, content: bytes, filename: str, title: str, alt_text: str,
                      channel_id: str, thread_ts: str | None = None,
                      directory: ChannelDirectory | None = None) -> UploadResult:
    """Upload `content` and share it in `channel_id` (in the thread of `thread_ts`); never raises for Slack.

    Sharing needs the bot in the channel, whatever chat:write.public allows for posts: on `not_in_channel` the
    bot joins (with a `directory`) and shares once more; a refused join is recorded with its reason.
    """
    try:
        file_id = await _upload(client, content=content, filename=filename, alt_text=alt_text)
        if isinstance(file_id, UploadResult):
            return file_id
        try:
            await _share(client, file_id=file_id, title=title, channel_id=channel_id, thread_ts=thread_ts)
        except SlackApiError as exc:
            if _slack_error(exc).error != "not_in_channel" or directory is None:
                raise
            refused = await directory.join(channel_id)
            if refused is not None:
                reason = directory.explain(channel_id, f"not_in_channel, and joining failed: {refused}")
                return UploadResult(Status.PERMANENT, error=reason[:300])
            await _share(client, file_id=file_id, title=title, channel_id=channel_id, thread_ts=thread_ts)
    except SlackApiError as exc:
        return _slack_error(exc)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return UploadResult(Status.TRANSIENT, error=f"{type(exc).__name__}: {exc}"[:300])
    return UploadResult(Status.OK, file_id=file_id)


async def _upload(client: AsyncWebClient, *, content: bytes, filename: str, alt_text: str) -> str | UploadResult:
    """Steps 1 and 2: an upload URL, then the bytes POSTed to it; the file id, or why not."""
    step1: Any = await client.files_getUploadURLExternal(filename=filename, length=len(content), alt_txt=alt_text)
    file_id, upload_url = step1.get("file_id"), step1.get("upload_url")
    if not file_id or not upload_url:
        return UploadResult(Status.TRANSIENT, error="files.getUploadURLExternal gave no upload_url")
    # The upload URL is not a Web API method: a plain POST of the raw bytes, answered 200 when stored.
    async with aiohttp.ClientSession() as session, session.post(
            upload_url, data=content, timeout=aiohttp.ClientTimeout(total=30)) as resp:
        if resp.status != 200:
            status = Status.TRANSIENT if resp.status >= 500 or resp.status == 429 else Status.PERMANENT
            return UploadResult(status, error=f"upload_http_{resp.status}")
    return str(file_id)


async def _share(client: AsyncWebClient, *, file_id: str, title: str, channel_id: str,
                 thread_ts: str | None) -> None:
    """Step 3: files.completeUploadExternal shares the uploaded file in the channel (thread)."""
    await client.files_completeUploadExternal(files=[{"id": file_id, "title": title}], channel_id=channel_id,
                                              thread_ts=thread_ts)
