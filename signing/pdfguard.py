"""Cheap checks on untrusted PDF bytes before any parser sees them, and cycle-safe walks of the
object graph once parsed.

Why: a lenient PDF reader (pyHanko's non-strict mode, which signing uses and verification falls
back to) trusts what a cross-reference section *declares*. A 591-byte file whose cross-reference
stream says ``/Size 2000000000 /Index [0 2000000000]`` makes it allocate an entry per declared
object (≈ 90 MB/s, until the kernel kills something); one that declares 8 million entries costs
22 s and 1.9 GB. The declarations are plain text (ISO 32000-1 §7.5.4 trailer, §7.5.8.2
cross-reference stream dictionary: neither may sit inside a compressed stream), so they can be
checked before parsing.

Rules:

* No file may declare more than :data:`MAX_OBJECTS` objects (ISO 32000-1 Annex C.2: the largest
  number of indirect objects a conforming file has is 8,388,607), nor more than
  :func:`plausible_objects` for its size: every declared entry needs a row of the
  cross-reference table (20 bytes) or stream (≥ 3 bytes before compression), so a file declaring
  many more entries than it has bytes is lying. Over either: :class:`PdfTooComplexError`.
* Walking a page tree or a field tree follows ``/Parent`` and ``/Kids`` with a visited set and
  a depth bound (ISO 32000-1 §7.7.3.2: the page tree is a *tree*; a loop is malformed input,
  answered :class:`PdfUnreadableError`, never followed forever).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from signing.errors import PdfTooComplexError, PdfUnreadableError

#: ISO 32000-1 Annex C.2, "Maximum number of indirect objects in a PDF file".
MAX_OBJECTS = 8_388_607
#: Declared entries allowed whatever the size (small files with a few free entries).
SMALL_FILE_OBJECTS = 100_000
#: Deepest page or field tree followed (real trees are a handful of levels deep).
MAX_TREE_DEPTH = 64
#: Most pages walked in one page tree.
MAX_PAGES = 100_000

#: ``/Size`` and ``/Index`` written plainly, and names with ``#xx`` escapes (ISO 32000-1
#: §7.3.5: ``/S#69ze`` is ``/Size``), which are decoded and compared.
_END = rb"(?=[\s\0/\[\]<>(){}%]|$)"  # a name ends at white space or a delimiter (§7.2.2)
_PLAIN = re.compile(rb"/(Size|Index)" + _END)
_ESCAPED = re.compile(rb"/([A-Za-z0-9#]{0,40}#[0-9A-Fa-f]{2}[A-Za-z0-9#]{0,40})" + _END)
_WHITE = b" \t\r\n\f\0"
_NUMBER = re.compile(rb"[+-]?(\d*)(?:\.\d*)?")
#: Most numbers read from one /Index array (a real one has two per subsection).
MAX_INDEX_NUMBERS = 200_000


def _skip(pdf: bytes, at: int) -> int:
    """Past white space and comments (§7.2.3: a comment runs to the end of its line)."""
    while at < len(pdf):
        if pdf[at] in _WHITE:
            at += 1
        elif pdf[at] == 0x25:  # %
            while at < len(pdf) and pdf[at] not in b"\r\n":
                at += 1
        else:
            break
    return at


def _number(pdf: bytes, at: int) -> tuple[int | None, int]:
    """``(value, end)`` of the number at ``at`` (None if there is none); leading zeros and a
    sign are read as a PDF reader reads them, a fraction is dropped."""
    match = _NUMBER.match(pdf, at)
    if match is None or match.end() == at or not match.group(1):
        return None, at
    digits = match.group(1).lstrip(b"0") or b"0"
    value = int(digits) if len(digits) <= 18 else 10 ** 18  # beyond any limit anyway
    return (-value if pdf[at] == 0x2D else value), match.end()


def _declared_after(pdf: bytes, name: bytes, at: int) -> int:
    """How many objects the value after ``/Size`` or ``/Index`` at ``at`` declares."""
    at = _skip(pdf, at)
    if name == b"Size":
        value, _ = _number(pdf, at)
        return max(value or 0, 0)
    if at >= len(pdf) or pdf[at] != 0x5B:  # [
        return 0
    numbers: list[int] = []
    at += 1
    while len(numbers) <= MAX_INDEX_NUMBERS:
        at = _skip(pdf, at)
        value, end = _number(pdf, at)
        if value is None:
            break
        numbers.append(max(value, 0))
        at = end
    if len(numbers) > MAX_INDEX_NUMBERS:
        return MAX_OBJECTS + 1
    return sum(numbers[1::2])


def _unescape(name: bytes) -> bytes:
    return re.sub(rb"#([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), name)


def plausible_objects(size: int) -> int:
    """The most entries a file of ``size`` bytes may declare (8 per byte: far above any real
    file, whose objects take tens of bytes each, and far below what a lie needs to hurt)."""
    return min(MAX_OBJECTS, max(SMALL_FILE_OBJECTS, 8 * size))


def check_declared_objects(pdf: bytes) -> None:
    """Refuse a PDF whose cross-reference sections declare more objects than any PDF of its
    size can hold (:class:`PdfTooComplexError`, code ``PDF_TOO_COMPLEX``). Reads ``/Size`` and
    ``/Index`` the way a reader does: escaped names, comments between key and value, signs
    and leading zeros. (What still hides from it meets the job's memory and time limits.)"""
    limit = plausible_objects(len(pdf))
    declared = 0
    for match in _PLAIN.finditer(pdf):
        declared = max(declared, _declared_after(pdf, match.group(1), match.end()))
    for match in _ESCAPED.finditer(pdf):  # only names with an escape: rare in real files
        name = _unescape(match.group(1))
        if name in (b"Size", b"Index"):
            declared = max(declared, _declared_after(pdf, name, match.end()))
    if declared > limit:
        raise PdfTooComplexError(
            f"the PDF declares {declared} objects; a file of {len(pdf)} bytes holds at most"
            f" {limit}", detail={"declared_objects": declared, "limit": limit})


def inherited(node, key: str):
    """The value of an inheritable page attribute (``/MediaBox``, ``/Resources``, …): from the
    page or the nearest ancestor that has it (ISO 32000-1 §7.7.3.4); None when none has it.
    Follows ``/Parent`` at most :data:`MAX_TREE_DEPTH` times and never twice to one object."""
    seen: set[int] = set()
    for _ in range(MAX_TREE_DEPTH + 1):
        if key in node:
            return node[key]
        if "/Parent" not in node:
            return None
        ref = node.raw_get("/Parent") if hasattr(node, "raw_get") else None
        ident = getattr(ref, "idnum", None)
        if ident is not None:
            if ident in seen:
                raise PdfUnreadableError("the page tree's /Parent chain loops")
            seen.add(ident)
        node = node["/Parent"]
        node = node.get_object() if hasattr(node, "get_object") else node
        if not hasattr(node, "keys"):
            raise PdfUnreadableError("a page's /Parent is not a dictionary")
    raise PdfUnreadableError(f"the page tree is deeper than {MAX_TREE_DEPTH} levels")


def walk_pages(root) -> Iterator:
    """References of the leaf pages under the catalog ``root``'s ``/Pages``, in order; each
    node at most once, at most :data:`MAX_PAGES` pages and :data:`MAX_TREE_DEPTH` levels."""
    try:
        top = root.raw_get("/Pages")
    except KeyError:
        raise PdfUnreadableError("the catalog has no /Pages") from None
    seen: set[int] = set()
    stack = [(top, 0)]
    count = 0
    while stack:
        ref, depth = stack.pop()
        ident = getattr(ref, "idnum", None)
        if ident is not None:
            if ident in seen:
                raise PdfUnreadableError("the page tree visits an object twice (a loop)")
            seen.add(ident)
        node = ref.get_object() if hasattr(ref, "get_object") else ref
        if not hasattr(node, "keys"):
            raise PdfUnreadableError("a page tree node is not a dictionary")
        if node.get("/Type") == "/Pages" or "/Kids" in node:
            if depth >= MAX_TREE_DEPTH:
                raise PdfUnreadableError(f"the page tree is deeper than {MAX_TREE_DEPTH} levels")
            kids = node.raw_get("/Kids") if "/Kids" in node else []
            kids = kids.get_object() if hasattr(kids, "get_object") else kids
            if not isinstance(kids, list):
                raise PdfUnreadableError("a page tree node's /Kids is not an array")
            stack.extend((kid, depth + 1) for kid in reversed(kids))
            continue
        count += 1
        if count > MAX_PAGES:
            raise PdfTooComplexError(f"the PDF has more than {MAX_PAGES} pages")
        yield ref
