"""Tolerant readers for Stripe objects: any field may be missing, null or of another type; none of them raise.

They run a few dozen times per webhook, so each answers what json.loads gives (dict, str, int, list, None) first
and leaves the `Mapping` ABC check, which is several times slower, to what is left: any Mapping is still read.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, TypeGuard

# json.loads' other types, exactly: never a Mapping, so no ABC check is needed to say no.
_NOT_MAPPINGS: Final = frozenset({str, int, float, bool, list, type(None)})


def is_mapping(value: Any) -> TypeGuard[Mapping[str, Any]]:
    """isinstance(value, Mapping), with the JSON types answered before the ABC check."""
    return isinstance(value, dict) or (type(value) not in _NOT_MAPPINGS and isinstance(value, Mapping))


def mapping(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """The object at obj[key], or an empty mapping."""
    value = obj.get(key)
    if isinstance(value, dict):  # what json.loads gives, before a call to is_mapping
        return value
    return value if is_mapping(value) else {}


def string(obj: Mapping[str, Any], key: str) -> str | None:
    """The non-blank string at obj[key]; blank strings (an address's "" line2) mean unknown."""
    value = obj.get(key)
    return value if isinstance(value, str) and value.strip() else None


# Stripe's largest amounts have 8 digits; anything beyond PostgreSQL's bigint is not an amount.
MAX_AMOUNT = 2**63 - 1


def integer(obj: Mapping[str, Any], key: str) -> int | None:
    """The integer at obj[key]; a bool is an int to Python but never an amount, nor is a 30-digit number."""
    value = obj.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and -MAX_AMOUNT <= value <= MAX_AMOUNT:
        return value
    return None


def stripe_id(value: Any) -> str | None:
    """A Stripe id given as the id string or as the expanded object that carries it."""
    if isinstance(value, str):
        return value or None
    if is_mapping(value):
        value = value.get("id")
        return value if isinstance(value, str) and value else None
    return None


def first_item(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """The first item of the Stripe list object at obj[key] (`{"object": "list", "data": [...]}`)."""
    data = mapping(obj, key).get("data")
    if isinstance(data, list) and data and is_mapping(data[0]):
        return data[0]
    return {}


def first_value(obj: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    """obj's value at the first of `keys` it holds a truthy value for, else None."""
    for key in keys:
        if value := obj.get(key):
            return value
    return None


def coalesce(*values: str | None) -> str | None:
    """The first value that is a non-empty string."""
    for value in values:
        if value:
            return value
    return None


def timestamp(value: Any) -> datetime | None:
    """Unix seconds as an aware UTC datetime, or None when absent or out of range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):  # a tuple: checked faster than int | float
        return None
    try:
        return datetime.fromtimestamp(value, UTC)  # positional: keyword arguments cost a C function more
    except (OverflowError, OSError, ValueError):  # years beyond 9999, NaN and infinities
        return None


def currency(obj: Mapping[str, Any]) -> str | None:
    """The ISO 4217 code, upper case; anything that cannot be one is dropped before money formatting."""
    code = obj.get("currency")  # three letters are never blank: no need for string()
    return code.upper() if isinstance(code, str) and len(code) == 3 and code.isascii() and code.isalpha() else None


def string_pairs(metadata: Mapping[str, Any]) -> dict[str, str]:
    """The str→str pairs of a metadata object, scalars stringified and nested values dropped."""
    pairs: dict[str, str] = {}
    for key, value in metadata.items():
        if not isinstance(key, str):
            continue
        if isinstance(value, bool):
            pairs[key] = "true" if value else "false"  # JSON's spelling, not Python's
        elif isinstance(value, str | int | float):
            pairs[key] = str(value)
    return pairs
