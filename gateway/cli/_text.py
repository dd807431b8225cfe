"""Untrusted text at the command line's two edges.

In: argparse ``type=`` converters that refuse a bad value before any work starts, so argparse
answers exit 2 with one line naming the argument (``--limit: must be a whole number from 1 to
10000 (got '-1')``). Out: :func:`safe` and :func:`json_text` escape what a terminal would act
on or reorder — C0/C1 controls (ESC, CSI), DEL, Unicode format characters (the bidi overrides
and isolates of CVE-2021-42574 "Trojan Source", zero-width characters), line/paragraph
separators and lone surrogates — in names, agency codes, document fields and database errors.
Printable text, Vietnamese included, is left as it is.
"""

from __future__ import annotations

import argparse
import json
import math
import unicodedata
from collections.abc import Callable
from typing import Any

#: Unicode general categories a terminal must never receive raw from untrusted text:
#: Cc (C0, DEL, C1), Cf (bidi controls, zero-width, BOM), Zl/Zp (U+2028/U+2029), Cs (surrogates
#: that ``surrogateescape`` made from undecodable bytes).
UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def _unsafe(ch: str) -> bool:
    return unicodedata.category(ch) in UNSAFE_CATEGORIES


def _escape(ch: str) -> str:
    code = ord(ch)
    special = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch)
    if special:
        return special
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def safe(value: object) -> str:
    """``str(value)`` with every unsafe character written as a Python-style escape
    (``\\x1b``, ``\\u202e``, ``\\n``): the result is one line a terminal shows as it is."""
    text = str(value)
    if text.isprintable():  # the common case: nothing to do
        return text
    return "".join(_escape(ch) if _unsafe(ch) else ch for ch in text)


def _json_escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # a UTF-16 surrogate pair, as JSON spells characters beyond the BMP
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def json_text(value: Any, **dumps_kwargs: Any) -> str:
    """``json.dumps(value, ensure_ascii=False)`` with unsafe characters as ``\\uXXXX`` escapes.

    Still valid JSON that decodes to the same value (RFC 8259 §7 allows any character escaped;
    outside strings JSON has only ASCII, and json.dumps already escaped C0 controls), and still
    readable: Vietnamese letters stay as they are."""
    text = json.dumps(value, ensure_ascii=False, **dumps_kwargs)
    if text.isascii() and "\x7f" not in text:
        return text
    return "".join(_json_escape(ch) if ch >= "\x7f" and _unsafe(ch) else ch for ch in text)


# --- argparse types -------------------------------------------------------------------------


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high``."""

    def convert(text: str) -> int:
        try:
            value = int(text.strip(), 10)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"must be a whole number from {low} to {high} (got {safe(repr(text))})")
        return value

    convert.__name__ = "whole number"
    return convert


def positive_float(high: float) -> Callable[[str], float]:
    """An argparse type: a finite number of seconds above 0, at most ``high``."""

    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and 0 < value <= high):
            raise argparse.ArgumentTypeError(
                f"must be a number above 0 and at most {high:g} (got {safe(repr(text))})")
        return value

    convert.__name__ = "number"
    return convert


def word(text: str) -> str:
    """An argparse type for identifiers (agency codes, key aliases, token ids): not empty,
    at most 200 characters, no white space, no unsafe character and no path separator (an
    agency code becomes part of queue and file names)."""
    if not text or len(text) > 200 or any(
            ch.isspace() or ch in "/\\" or _unsafe(ch) for ch in text):
        raise argparse.ArgumentTypeError(
            "must be 1 to 200 characters without spaces, slashes or control characters"
            f" (got {safe(repr(text))})")
    return text


def label(text: str) -> str:
    """An argparse type for free text shown to people (a token holder's name): not blank,
    at most 200 characters, no unsafe character (a newline or a bidi override would let the
    text forge or hide the lines printed around it)."""
    if not text.strip() or len(text) > 200 or any(_unsafe(ch) for ch in text):
        raise argparse.ArgumentTypeError(
            "must be 1 to 200 characters of text without control characters"
            f" (got {safe(repr(text))})")
    return text


#: TCP port, 0 meaning any free port.
port = bounded_int(0, 65535)
port.__name__ = "port"
