"""FakeSlack's views.open / views.update / views.push: Slack's answers, a trigger id required as Slack requires."""

from __future__ import annotations

import itertools
from typing import Any

_ids = itertools.count(1)


def views_answer(method: str, args: dict[str, Any]) -> dict[str, Any]:
    """The answer Slack gives: the view with its id, or the error for a missing trigger or view."""
    view = args.get("view")
    if not isinstance(view, dict) or not view.get("type"):
        return {"ok": False, "error": "invalid_arguments"}
    if method in ("views.open", "views.push") and not args.get("trigger_id"):
        return {"ok": False, "error": "invalid_trigger_id"}
    if method == "views.update" and not (args.get("view_id") or args.get("external_id")):
        return {"ok": False, "error": "not_found"}
    view_id = args.get("view_id") or f"V{next(_ids):08d}"
    return {"ok": True, "view": {"id": view_id, **view, "state": {"values": {}}}}
