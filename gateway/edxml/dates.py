"""Dates and timestamps as edXML producers write them.

QCVN 102:2016 writes dates ``yyyy/MM/dd`` and timestamps ``yyyy/MM/dd HH:mm:ss``. Producers drift
to ``dd/MM/yyyy`` and ``yyyy-MM-dd`` (and ISO ``T`` timestamps); all are accepted, the canonical
form is always emitted. Naive timestamps are Vietnam time (UTC+07:00).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone

VIETNAM_TZ = timezone(timedelta(hours=7), "ICT")

_DATE_RES = (
    (re.compile(r"(\d{4})[/-](\d{1,2})[/-](\d{1,2})"), (1, 2, 3)),  # yyyy/MM/dd, yyyy-MM-dd
    (re.compile(r"(\d{1,2})[/-](\d{1,2})[/-](\d{4})"), (3, 2, 1)),  # dd/MM/yyyy, dd-MM-yyyy
)
_TIME_RE = re.compile(
    r"[ T](\d{1,2}):(\d{2})(?::(\d{2}))?(?:[.,]\d+)?\s*(Z|[+-]\d{2}:?\d{2})?"
)


def _match_date(text: str) -> tuple[date, str] | None:
    for regex, (yi, mi, di) in _DATE_RES:
        m = regex.match(text)
        if m:
            try:
                value = date(int(m.group(yi)), int(m.group(mi)), int(m.group(di)))
            except ValueError:
                return None
            return value, text[m.end():]
    return None


def parse_date(text: str) -> date:
    """Parse a date in any accepted form; raise ValueError otherwise.

    A timestamp whose date part is valid is accepted too (time ignored), since some producers
    write ``PromulgationDate`` as ``2015/09/30 00:00:00``.
    """
    text = text.strip()
    got = _match_date(text)
    if got is None:
        raise ValueError(f"not a date: {text!r}")
    value, rest = got
    if rest and not _TIME_RE.fullmatch(rest):
        raise ValueError(f"not a date: {text!r}")
    return value


def parse_timestamp(text: str) -> datetime:
    """Parse ``yyyy/MM/dd HH:mm:ss`` (or a drifted form); naive values are Vietnam time."""
    text = text.strip()
    got = _match_date(text)
    if got is None:
        raise ValueError(f"not a timestamp: {text!r}")
    day, rest = got
    if not rest:
        return datetime(day.year, day.month, day.day, tzinfo=VIETNAM_TZ)
    m = _TIME_RE.fullmatch(rest)
    if not m:
        raise ValueError(f"not a timestamp: {text!r}")
    hh, mm, ss, tz = m.group(1), m.group(2), m.group(3), m.group(4)
    tzinfo = VIETNAM_TZ
    if tz == "Z":
        tzinfo = UTC
    elif tz:
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        tzinfo = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    try:
        return datetime(day.year, day.month, day.day, int(hh), int(mm), int(ss or 0),
                        tzinfo=tzinfo)
    except ValueError as exc:
        raise ValueError(f"not a timestamp: {text!r}") from exc


def normalize_timestamp(value: datetime) -> datetime:
    """Aware, whole-second, Vietnam time: the value a build/parse round trip yields."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=VIETNAM_TZ)
    return value.astimezone(VIETNAM_TZ).replace(microsecond=0)


def format_date(value: date) -> str:
    return f"{value.year:04d}/{value.month:02d}/{value.day:02d}"


def format_timestamp(value: datetime) -> str:
    v = normalize_timestamp(value)
    return f"{format_date(v)} {v.hour:02d}:{v.minute:02d}:{v.second:02d}"
