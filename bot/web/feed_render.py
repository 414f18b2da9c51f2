"""Block Kit → HTML for the local feed, roughly as Slack draws it. Pure, and safe by construction.

Every piece of text is HTML-escaped; the only markup is what this module writes itself (a fixed set of tags
and classes), and links keep only http(s) and mailto targets. mrkdwn is Slack's flavour:
https://api.slack.com/reference/surfaces/formatting — *bold*, _italic_, ~strike~, `code`, ```pre```,
<url|label>, <@user>, <#channel|name>, <!subteam^group|@handle>, <!here>, and the three entities &amp; &lt; &gt;.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from bot.blocks.text import unescape_mrkdwn as _unslack  # Slack's three entities undone: what the person reads

MAX_TEXT: Final = 12_000  # characters rendered from one text object; Slack's own limits are lower

_PLACEHOLDER = re.compile(r"\x00(\d+)\x00")
_PRE = re.compile(r"```\n?(.+?)```", re.S)
_CODE = re.compile(r"`([^`\n]+)`")
_SPECIAL = re.compile(r"<([^<>\n]{1,3000})>")
# Slack's markers need a non-word character (or the text's edge) outside and no space just inside.
_STYLES: Final = (
    (re.compile(r"(?<![\w*])\*(?!\s)([^*\n]+?)(?<!\s)\*(?![\w*])"), "b"),
    (re.compile(r"(?<![\w_])_(?!\s)([^_\n]+?)(?<!\s)_(?![\w_])"), "i"),
    (re.compile(r"(?<![\w~])~(?!\s)([^~\n]+?)(?<!\s)~(?![\w~])"), "s"),
)
_SAFE_SCHEMES: Final = ("http://", "https://", "mailto:")
_BROADCASTS: Final = {"here": "@here", "channel": "@channel", "everyone": "@everyone"}


def esc(text: object) -> str:
    """HTML-escape anything, quotes included (so it is safe in attributes too)."""
    return html.escape(str(text), quote=True)


def _special(inner: str) -> str:
    """One <…> sequence: a link, a mention, a channel, a broadcast, or (unknown) the text as typed."""
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        return f'<span class="mention">@{esc(_unslack(label or target[1:]))}</span>'
    if target.startswith("#"):
        return f'<span class="mention">#{esc(_unslack(label or target[1:]))}</span>'
    if target.startswith("!"):
        name, _, ref = target[1:].partition("^")
        if name == "subteam":  # a user group: <!subteam^S…|@handle>, the label optional (and its @ too)
            return f'<span class="mention">@{esc(_unslack(label).removeprefix("@") or ref)}</span>'
        shown = _BROADCASTS.get(name) or _unslack(label) or name
        return f'<span class="mention">{esc(shown)}</span>'
    url = _unslack(target)
    if url.lower().startswith(_SAFE_SCHEMES):
        return (f'<a href="{esc(url)}" target="_blank" rel="noopener noreferrer">'
                f"{esc(_unslack(label) if label else url)}</a>")
    return esc(_unslack(f"<{inner}>"))


def mrkdwn(text: str) -> str:
    """Slack mrkdwn as HTML: formatting, links and mentions drawn, everything else escaped."""
    saved: list[str] = []

    def keep(fragment: str) -> str:
        saved.append(fragment)
        return f"\x00{len(saved) - 1}\x00"

    source = text[:MAX_TEXT].replace("\x00", "")
    source = _PRE.sub(lambda m: keep(f"<pre>{esc(_unslack(m.group(1)))}</pre>"), source)
    source = _CODE.sub(lambda m: keep(f"<code>{esc(_unslack(m.group(1)))}</code>"), source)
    source = _SPECIAL.sub(lambda m: keep(_special(m.group(1))), source)
    out = esc(_unslack(source))
    for pattern, tag in _STYLES:
        out = pattern.sub(rf"<{tag}>\1</{tag}>", out)
    out = out.replace("\n", "<br>")
    # A fragment may hold an earlier one's placeholder (a ```pre``` inside a `code` span): expand until none is left;
    # each names an earlier fragment, so this ends. The input's own NULs were removed, so none is forged.
    while _PLACEHOLDER.search(out):
        out = _PLACEHOLDER.sub(lambda m: saved[int(m.group(1))], out)
    return out


def text_object(obj: Any) -> str:
    """A composition text object: mrkdwn drawn, plain_text escaped."""
    if not isinstance(obj, Mapping):
        return ""
    raw = str(obj.get("text") or "")
    return mrkdwn(raw) if obj.get("type") == "mrkdwn" else esc(raw[:MAX_TEXT]).replace("\n", "<br>")


def _element(el: Any) -> str:
    """An interactive or context element: buttons become real buttons the page wires up."""
    if not isinstance(el, Mapping):
        return ""
    kind = el.get("type")
    if kind == "button":
        style = el.get("style") if el.get("style") in ("primary", "danger") else "default"
        label = text_object(el.get("text"))
        if el.get("url"):
            return _special(f"{el['url']}|{(el.get('text') or {}).get('text', '')}")
        return (f'<button type="button" class="btn {style}" data-action-id="{esc(el.get("action_id", ""))}"'
                f' data-value="{esc(el.get("value", ""))}">{label}</button>')
    if kind in ("mrkdwn", "plain_text"):
        return f"<span>{text_object(el)}</span>"
    if kind == "image":
        return f'<span class="img-alt">[{esc(el.get("alt_text", "image"))}]</span>'
    return f'<span class="unsupported">[{esc(kind)}]</span>'


def _section(block: Mapping[str, Any]) -> str:
    parts = []
    if block.get("text"):
        parts.append(f'<div class="text">{text_object(block["text"])}</div>')
    fields = block.get("fields") or []
    if fields:
        cells = "".join(f'<div class="field">{text_object(f)}</div>' for f in fields)
        parts.append(f'<div class="fields">{cells}</div>')
    accessory = block.get("accessory")
    if accessory:
        parts.append(f'<div class="accessory">{_element(accessory)}</div>')
    return f'<div class="block section">{"".join(parts)}</div>'


def _rich_text(block: Mapping[str, Any]) -> str:
    """Only the words of a rich_text block (salespulse does not send them; shown for completeness)."""
    words: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            if isinstance(node.get("text"), str):
                words.append(node["text"])
            for child in node.get("elements") or []:
                walk(child)

    walk(block)
    return f'<div class="block section"><div class="text">{esc("".join(words)).replace(chr(10), "<br>")}</div></div>'


_RENDERERS: Final[dict[str, Callable[[Mapping[str, Any]], str]]] = {
    "header": lambda b: f'<div class="block header">{text_object(b.get("text"))}</div>',
    "section": _section,
    "context": lambda b: ('<div class="block context">'
                          + "".join(_element(e) for e in b.get("elements") or []) + "</div>"),
    "divider": lambda b: '<hr class="block divider">',
    "actions": lambda b: ('<div class="block actions">'
                          + "".join(_element(e) for e in b.get("elements") or []) + "</div>"),
    "image": lambda b: (f'<div class="block image">[{esc(b.get("alt_text", "image"))}]'
                        f' {_special(str(b.get("image_url", "")))}</div>'),
    "rich_text": _rich_text,
}


def render_message(text: str, blocks: Sequence[Mapping[str, Any]]) -> str:
    """A message's body: its blocks, or (with none) its `text`, which Slack then shows as mrkdwn."""
    if not blocks:
        return f'<div class="block section"><div class="text">{mrkdwn(text)}</div></div>'
    out = []
    for block in blocks:
        kind = block.get("type") if isinstance(block, Mapping) else None
        render = _RENDERERS.get(str(kind))
        out.append(render(block) if render and isinstance(block, Mapping)
                   else f'<div class="block unsupported">[{esc(kind)} block]</div>')
    return "".join(out)

