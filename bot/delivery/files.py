"""File uploads with Slack's current two-step flow: files.getUploadURLExternal, POST the bytes, then
files.completeUploadExternal to share the file (in a message's thread). files.upload is retired:
https://docs.slack.dev/changelog/2024-04-a-better-way-to-upload-files-is-here-to-stay"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.delivery.senders import PERMANENT_ERRORS, Status

# Errors meaning "this app may not upload here" on top of the posting ones: no retry will help, so the
# report stays without its chart. https://docs.slack.dev/reference/methods/files.getUploadURLExternal
UPLOAD_PERMANENT_ERRORS: Final = PERMANENT_ERRORS | frozenset({
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
    status_code = getattr(exc.response, "status_code", 0)
    data = exc.response.data
    error = str(data.get("error") if isinstance(data, dict) else "") or f"http_{status_code}"
    if status_code == 429:
        return UploadResult(Status.RATE_LIMITED, error="ratelimited")
    if status_code < 500 and error in UPLOAD_PERMANENT_ERRORS:
        return UploadResult(Status.PERMANENT, error=error)
    return UploadResult(Status.TRANSIENT, error=error)


async def upload_file(client: AsyncWebClient, *, content: bytes, filename: str, title: str, alt_text: str,
                      channel_id: str, thread_ts: str | None = None) -> UploadResult:
    """Upload `content` and share it in `channel_id` (in the thread of `thread_ts`); never raises for Slack."""
    try:
        step1: Any = await client.files_getUploadURLExternal(filename=filename, length=len(content),
                                                             alt_txt=alt_text)
        file_id, upload_url = step1.get("file_id"), step1.get("upload_url")
        if not file_id or not upload_url:
            return UploadResult(Status.TRANSIENT, error="files.getUploadURLExternal gave no upload_url")
        # The upload URL is not a Web API method: a plain POST of the raw bytes, answered 200 when stored.
        async with aiohttp.ClientSession() as session, session.post(
                upload_url, data=content, timeout=aiohttp.ClientTimeout(total=30)) as resp:
            if resp.status != 200:
                status = Status.TRANSIENT if resp.status >= 500 or resp.status == 429 else Status.PERMANENT
                return UploadResult(status, error=f"upload_http_{resp.status}")
        await client.files_completeUploadExternal(files=[{"id": file_id, "title": title}],
                                                  channel_id=channel_id, thread_ts=thread_ts)
    except SlackApiError as exc:
        return _slack_error(exc)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return UploadResult(Status.TRANSIENT, error=f"{type(exc).__name__}: {exc}"[:300])
    return UploadResult(Status.OK, file_id=str(file_id))
