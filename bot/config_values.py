"""The values settings are made of, and their checks: local hour windows, Slack ids, a PostgreSQL URI, a zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Final
from urllib.parse import parse_qs, unquote, urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@dataclass(frozen=True, slots=True)
class HourWindow:
    """A daily local-time window such as 09:00-21:00 (end exclusive; may wrap past midnight)."""

    start: time
    end: time

    def contains(self, t: time) -> bool:
        """Whether the local wall-clock time `t` falls inside the window."""
        if self.start <= self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end

    def open_on(self, local: datetime, days: frozenset[int]) -> bool:
        """Whether the window is open at the local time `local` on one of `days` (weekday numbers, Monday 0);
        the hours past midnight of a window like 18:00-02:00 belong to the day it opened."""
        t = local.time()
        if not self.contains(t):
            return False
        opened = local.date() - timedelta(days=1) if self.start > self.end and t < self.end else local.date()
        return opened.weekday() in days

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def parse_hhmm(value: str) -> time:
    """`HH:MM` (00:00 to 23:59) as a time; ValueError naming the input otherwise."""
    try:
        hours, minutes = value.strip().split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise ValueError(f"expected HH:MM, got {value!r}") from None


def parse_window(value: str) -> HourWindow:
    """`HH:MM-HH:MM` with two different ends as an HourWindow; ValueError naming the input otherwise."""
    start, sep, end = value.partition("-")
    if not sep:
        raise ValueError(f"expected HH:MM-HH:MM, got {value!r}")
    window = HourWindow(parse_hhmm(start), parse_hhmm(end))
    if window.start == window.end:  # an empty window: never open (the Settings view refuses it as well)
        raise ValueError(f"the end must differ from the start, got {value.strip()!r}")
    return window


def slack_ids(value: tuple[str, ...], kinds: str, what: str) -> tuple[str, ...]:
    """`value` unchanged if each entry is a Slack id (upper-case letters and digits) starting with one of `kinds`."""
    for part in value:
        if not (part.isascii() and part.isalnum() and part.isupper() and part[0] in kinds):
            raise ValueError(f"{part[:40]!r} is not {what}")
    return value


# asyncpg reads a DSN with urllib's urlparse (asyncpg.connect_utils): a '#' starts a fragment it ignores, and the user
# name and password end at the FIRST '@' of the authority, as in libpq. So a password with an unencoded '#', '@', '/'
# or '?' moved the host, port or database into the password, and asyncpg's errors then quoted part of it.
PASSWORD_ENCODING: Final = ("special characters in the password must be percent-encoded (# → %23, @ → %40,"
                            " / → %2F, ? → %3F)")


def check_postgres_uri(uri: str) -> None:
    """ValueError unless `uri` is a postgresql:// URI asyncpg reads as written: its authority, hosts, ports and query
    split as asyncpg splits them. asyncpg would refuse the others only when connecting — after `run` has waited a
    minute for a server, or with a ValueError quoting part of the password; the messages here name the part that is
    wrong, never the URI (it may hold a password)."""
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme not in ("postgresql", "postgres"):
        raise ValueError("expected a postgresql:// (or postgres://) URI")
    if "#" in uri:  # asyncpg drops it and all that follows: a password cut short, or a host that is its tail
        raise ValueError(PASSWORD_ENCODING if "@" in uri.partition("#")[2] else "a '#' must be percent-encoded as %23")
    authority = rest.partition("/")[0].partition("?")[0]  # urlparse's netloc, there being no '#'
    # The first '@' ends the user name and password. A '/' or '?' in the password ends the authority early: its tail,
    # up to the real '@', went to the path or query. An '@' in the path is that one, whatever the "port" looks like
    # ("app:2024/pw@db/shop": port 2024, database "pw@db/shop"); one in a query value (?user=me@x) is read as written.
    cut_short = bool(authority) and "@" not in authority and "@" in rest
    if authority.count("@") > 1 or (cut_short and "@" in rest[len(authority):].partition("?")[0]):
        raise ValueError(PASSWORD_ENCODING)
    try:
        parts = urlparse(uri)
    except ValueError:  # a '[' without ']', or a Unicode look-alike of '@' or '/': urllib's message quotes them
        userinfo = authority.rpartition("@")[0]
        in_password = "[" in userinfo or "]" in userinfo or not userinfo.isascii()
        raise ValueError(PASSWORD_ENCODING if in_password else "the host in the URI is malformed") from None
    try:
        query = parse_qs(parts.query, strict_parsing=True) if parts.query else {}
    except ValueError:  # a field without '=', which urllib's message quotes
        raise ValueError(PASSWORD_ENCODING if cut_short else "the query string of the URI is malformed") from None
    if hosts := parts.netloc.rpartition("@")[2]:
        try:
            _check_hosts(hosts, unquote_ports=True)
        except ValueError:
            if cut_short:  # the "port" is the password's first part
                raise ValueError(PASSWORD_ENCODING) from None
            raise
        return
    # Without a host in the authority, asyncpg takes ?port= and then ?host= (the last of each).
    if "port" in query:
        _check_ports(query["port"][-1].split(","))
    if "host" in query:
        _check_hosts(query["host"][-1], unquote_ports=False)


def network_hosts(uri: str) -> list[str]:
    """The host names and addresses (not Unix-socket directories) that asyncpg connects to for `uri`, one
    check_postgres_uri accepts, in its order: the authority's, else the last ?host= (none: asyncpg's defaults)."""
    parts = urlparse(uri)
    in_authority = parts.netloc.rpartition("@")[2]
    hostlist = in_authority or (parse_qs(parts.query).get("host") or [""])[-1]
    hosts = []
    for spec in hostlist.split(",") if hostlist else ():
        # An IPv6 literal in brackets, else up to the first ':' (asyncpg's split); a '/' starts a socket directory.
        host = spec[1:].partition("]")[0] if spec.startswith("[") else spec.partition(":")[0]
        host = unquote(host) if in_authority else host
        if not spec.startswith("/") and not host.startswith("/"):
            hosts.append(host)
    return hosts


def _check_hosts(hostlist: str, *, unquote_ports: bool) -> None:
    """ValueError unless each comma-separated host of `hostlist` is one asyncpg reads (its _parse_hostlist)."""
    for host in hostlist.split(","):
        if not host:  # asyncpg would fail on an IndexError
            raise ValueError("a host in the URI is empty")
        if host.startswith("/"):  # a Unix-socket directory: no port in it
            continue
        if host.startswith("["):  # an IPv6 literal; asyncpg ignores anything after it but a port
            port = host.partition("]")[2]
            if port and not port.startswith(":"):
                raise ValueError("a port in the URI is not a number")
            port = port[1:]
        else:
            port = host.partition(":")[2]  # the first ':', as asyncpg: "db:5432:1" has the port "5432:1"
        if port:
            _check_ports([unquote(port) if unquote_ports else port])


def _check_ports(ports: list[str]) -> None:
    for port in ports:
        if not (port.isascii() and port.isdigit()):
            raise ValueError("a port in the URI is not a number")
        if not 1 <= int(port) <= 65535:  # asyncpg would die with an OverflowError
            raise ValueError("a port in the URI is outside 1-65535")


# IANA zone names that PostgreSQL reads as its own time-zone abbreviations (pg_timezone_abbrevs, looked up before
# the zone database): CET is +01:00 all year there while zoneinfo applies CEST, so every SQL day and hour bucket
# would be an hour off each summer. (EST, MST and HST are fixed offsets on both sides, so they stay accepted:
# refusing them would stop a running store on upgrade for figures that are right.) Each maps to the city zone
# suggested instead.
ABBREVIATION_ZONES: Final = {"CET": "Europe/Paris", "MET": "Europe/Paris", "EET": "Europe/Athens",
                             "WET": "Europe/Lisbon"}


def check_zone(name: str) -> str:
    """`name` unchanged if it is a time zone zoneinfo knows and PostgreSQL reads as that same zone; ValueError
    otherwise."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {name!r}") from None
    check_not_abbreviation(name)
    return name


def check_not_abbreviation(name: str) -> None:
    """ValueError if PostgreSQL would read the zone `name` as a fixed-offset abbreviation (ABBREVIATION_ZONES)."""
    city = ABBREVIATION_ZONES.get(name)
    if city is not None:
        # Short enough for the Settings view's field error (150 characters).
        raise ValueError(f"PostgreSQL reads {name!r} as a fixed-offset abbreviation, so totals could be an hour off:"
                         f" use a city zone such as {city}")
