"""A Block Kit modal → an HTML form for the local feed, so `salespulse demo` can open and save the Settings view
without Slack. Pure and escaped like feed_render; the page's script sends the form back as Slack's
`view.state.values` (one entry per input block, keyed by its block_id and action_id)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.web.feed_render import esc, render_message, text_object


def _control(block_id: str, el: Mapping[str, Any]) -> str:
    """One input element as a form control carrying its block id, action id and Block Kit type."""
    kind, action = str(el.get("type")), str(el.get("action_id", ""))
    attrs = f'data-block-id="{esc(block_id)}" data-action-id="{esc(action)}" data-type="{esc(kind)}"'
    if kind == "timepicker":
        return f'<input type="time" {attrs} value="{esc(el.get("initial_time", ""))}">'
    if kind == "number_input":
        step = "any" if el.get("is_decimal_allowed") else "1"
        return f'<input type="number" step="{step}" {attrs} value="{esc(el.get("initial_value", ""))}">'
    if kind == "static_select":
        chosen = (el.get("initial_option") or {}).get("value")
        options = "".join(f'<option value="{esc(o.get("value", ""))}"'
                          f'{" selected" if o.get("value") == chosen else ""}>{text_object(o.get("text"))}</option>'
                          for o in el.get("options") or [])
        return f"<select {attrs}>{options}</select>"
    if kind == "checkboxes":
        ticked = {o.get("value") for o in el.get("initial_options") or []}
        boxes = "".join(f'<label class="check"><input type="checkbox" value="{esc(o.get("value", ""))}"'
                        f'{" checked" if o.get("value") in ticked else ""}> {text_object(o.get("text"))}</label>'
                        for o in el.get("options") or [])
        return f'<div class="checks" {attrs}>{boxes}</div>'
    if kind == "multi_users_select":
        users = ", ".join(el.get("initial_users") or [])
        return f'<input type="text" {attrs} value="{esc(users)}" placeholder="Slack user ids, comma-separated">'
    initial = el.get("initial_value") or el.get("initial_conversation") or ""
    return f'<input type="text" {attrs} value="{esc(initial)}">'  # plain_text_input, conversations_select


def _input(block: Mapping[str, Any]) -> str:
    block_id = str(block.get("block_id", ""))
    hint = f'<small class="hint-text">{text_object(block["hint"])}</small>' if block.get("hint") else ""
    return (f'<div class="block input"><label>{text_object(block.get("label"))}'
            f'{"" if block.get("optional") is False else " <em>(optional)</em>"}</label>'
            f'{_control(block_id, block.get("element") or {})}{hint}'
            f'<p class="field-error" data-error-for="{esc(block_id)}" hidden></p></div>')


def render_modal(view: Mapping[str, Any]) -> str:
    """The modal as a form: its title, blocks (inputs as controls) and its submit and close buttons."""
    parts = []
    for block in view.get("blocks") or []:
        if isinstance(block, Mapping) and block.get("type") == "input":
            parts.append(_input(block))
        elif isinstance(block, Mapping):
            parts.append(render_message("", [block]))
    submit = view.get("submit")
    buttons = (f'<button type="submit" class="btn primary">{text_object(submit)}</button>' if submit else "") + \
        f'<button type="button" class="btn modal-close">{text_object(view.get("close") or {"text": "Close"})}</button>'
    # private_metadata goes back with the values, as Slack sends it: what the form showed when it opened.
    return (f'<form class="modal" data-callback-id="{esc(view.get("callback_id", ""))}"'
            f' data-private-metadata="{esc(view.get("private_metadata", ""))}">'
            f'<h2>{text_object(view.get("title"))}</h2><div class="modal-body">{"".join(parts)}</div>'
            f'<div class="modal-actions">{buttons}</div></form>')
