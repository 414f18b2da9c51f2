"""File uploads with Slack's current two-step flow: files.getUploadURLExternal, POST the bytes, then
files.completeUploadExternal to share the file (in a message's thread). files.upload is retired:
https://docs.slack.dev/changelog/2024-04-a-better-way-to-upload-files-is-here-to-stay

The steps are separate calls so the caller can record the file id between them: the share may succeed with its
answer lost, and files.info then says whether it did."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.delivery.channels import ChannelDirectory
from bot.delivery.senders import HOLD_ERRORS, PERMANENT_ERRORS, Status, server_error, slack_error
from bot.delivery.standing import ARCHIVED_ERRORS, NOT_FOUND

log = logging.getLogger(__name__)

# Errors meaning "this app may not upload here" on top of the posting ones: no retry will help, so the
# report stays without its chart. https://docs.slack.dev/reference/methods/files.getUploadURLExternal
UPLOAD_PERMANENT_ERRORS: Final = PERMANENT_ERRORS | HOLD_ERRORS | frozenset({
    "not_allowed_token_type", "file_uploads_disabled", "file_uploads_except_images_disabled",
    "file_upload_size_restricted", "storage_limit_reached", "access_denied", "invalid_channel",
    "not_allowed", "posting_to_channel_denied",
})


@dataclass(frozen=True, slots=True)
class UploadResult:
    """How an upload ended: OK with the file id, or why not (with the file id when one is in Slack already)."""

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


class Shared(StrEnum):
    """Whether an uploaded file is shared in a channel, as files.info tells it."""

    YES = "yes"
    NO = "no"
    GONE = "gone"  # Slack knows no such file (deleted, or never completed and expired): upload it anew
    LATER = "later"  # Slack could not answer now (5xx, timeout, 429): ask again later, share nothing meanwhile
    UNKNOWN = "unknown"  # Slack will not say (no files:read scope): the file can only be shared again


@dataclass(frozen=True, slots=True)
class ShareCheck:
    """files.info's answer about one file in one channel, and Slack's error when it gave none."""

    shared: Shared
    error: str | None = None


def _failed(exc: Exception) -> UploadResult:
    if isinstance(exc, SlackApiError):
        return _slack_error(exc)
    return UploadResult(Status.TRANSIENT, error=f"{type(exc).__name__}: {exc}"[:300])


async def upload_content(client: AsyncWebClient, *, content: bytes, filename: str, alt_text: str) -> UploadResult:
    """Steps 1 and 2: the file in Slack, not shared anywhere yet; OK with its file id, or why not. Never raises
    for Slack: the caller records the id before sharing, so a share whose answer is lost is not made twice."""
    try:
        got = await _upload(client, content=content, filename=filename, alt_text=alt_text)
    except (SlackApiError, aiohttp.ClientError, TimeoutError, OSError) as exc:
        return _failed(exc)
    return got if isinstance(got, UploadResult) else UploadResult(Status.OK, file_id=got)


async def share_file(client: AsyncWebClient, *, file_id: str, title: str, channel_id: str,
                     thread_ts: str | None = None, directory: ChannelDirectory | None = None) -> UploadResult:
    """Step 3: share the uploaded file in `channel_id` (in the thread of `thread_ts`); never raises for Slack.

    Sharing needs the bot in the channel, whatever chat:write.public allows for posts: on `not_in_channel` the
    bot joins (with a `directory`) and shares once more; a refused join is recorded with its reason, as are a
    channel not found or archived (for /health, as a refused post is), and a share made shows the bot a member.
    A timeout is TRANSIENT although Slack may have shared the file: ask `shared_in` before sharing it again.
    """
    result = await _share_joining(client, file_id=file_id, title=title, channel_id=channel_id, thread_ts=thread_ts,
                                  directory=directory)
    if directory is not None and result.status is Status.OK:
        await directory.note_shared(channel_id)
    elif directory is not None and result.error in NOT_FOUND | ARCHIVED_ERRORS:
        await directory.note_refusal(channel_id, result.error)
    return result


async def _share_joining(client: AsyncWebClient, *, file_id: str, title: str, channel_id: str,
                         thread_ts: str | None, directory: ChannelDirectory | None) -> UploadResult:
    """Step 3, joining and sharing once more on `not_in_channel` (with a `directory`)."""
    try:
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
    except (SlackApiError, aiohttp.ClientError, TimeoutError, OSError) as exc:
        return _failed(exc)
    return UploadResult(Status.OK, file_id=file_id)


async def share_once(client: AsyncWebClient, *, file_id: str, title: str, channel_id: str, thread_ts: str | None,
                     directory: ChannelDirectory | None, ask: bool) -> UploadResult:
    """Share the uploaded file in the channel (thread) unless, with `ask` (an earlier share's answer may have been
    lost), files.info says it is there already. Not OK: `file_id` is the file to try again with, None when Slack
    no longer has it (upload anew)."""
    if ask:
        check = await shared_in(client, file_id=file_id, channel_id=channel_id)
        if check.shared is Shared.YES:
            return UploadResult(Status.OK, file_id=file_id)
        if check.shared in (Shared.GONE, Shared.LATER):
            return UploadResult(Status.TRANSIENT, file_id=file_id if check.shared is Shared.LATER else None,
                                error=f"files.info: {check.error}")
        if check.shared is Shared.UNKNOWN:
            log.warning("cannot ask Slack whether file %s is shared (%s; files.info needs files:read): sharing the "
                        "same file again", file_id, check.error)
    result = await share_file(client, file_id=file_id, title=title, channel_id=channel_id, thread_ts=thread_ts,
                              directory=directory)
    return result if result.status is Status.OK else dataclasses.replace(result, file_id=file_id)


async def shared_in(client: AsyncWebClient, *, file_id: str, channel_id: str) -> ShareCheck:
    """Whether the file is shared in the channel: files.info lists it under `shares` (public or private) and
    `channels`/`groups`. It needs the files:read scope; without it Slack cannot be asked (UNKNOWN).
    https://docs.slack.dev/reference/methods/files.info"""
    try:
        resp: Any = await client.files_info(file=file_id)
    except (SlackApiError, aiohttp.ClientError, TimeoutError, OSError) as exc:
        failed = _failed(exc)
        if failed.error in ("file_not_found", "file_deleted"):
            return ShareCheck(Shared.GONE, failed.error)
        later = failed.status in (Status.TRANSIENT, Status.RATE_LIMITED)
        return ShareCheck(Shared.LATER if later else Shared.UNKNOWN, failed.error)
    file = resp.get("file") or {}
    shares = file.get("shares") or {}
    places = {*(file.get("channels") or []), *(file.get("groups") or []),
              *(shares.get("public") or {}), *(shares.get("private") or {})}
    return ShareCheck(Shared.YES if channel_id in places else Shared.NO)


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
