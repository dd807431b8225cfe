"""The drop-folder adapter: each document becomes one directory an eOffice picks up.

Layout: ``<root>/<agency>/<message_id>/`` holding the attachments and ``manifest.json``
(the delivery metadata plus, per file, the name on disk, size and sha256). A typed business
message (issue 13) also holds ``business-<kind>.json`` (``business-revoke.json``,
``business-update.json``, ``business-replace.json``, ``business-take_back.json``): its
``business`` block, whose ``originals`` name the documents delivered before that it is about —
a pick-up tool sees the kind from the file list alone; ``manifest.json`` has ``kind`` too. A
receiver's status about a document the agency sent (``kind`` status) is a directory with
``status.json`` (``kind``, ``document_id``, ``edxml_document_id``, ``status``: receiver, code,
description, staff, timestamp) and the manifest; it has no files.

The rule: a directory under its final name is always complete. Everything is written into
``<root>/<agency>/.tmp-<message_id>-<random>`` on the same filesystem, each file fsynced,
then the directory is renamed into place and the parent fsynced. An existing final
directory means the document was already delivered (idempotent redelivery). Directories
starting with ``.tmp-`` are never to be picked up by the eOffice.

Attachment names come from other agencies and are untrusted: :func:`safe_file_names` turns
them into names that are safe on Linux and Windows shares (at most 255 UTF-8 bytes, extension
kept, no controls or bidi overrides, no device names, distinct); the manifest keeps the
original ``name`` next to the ``file`` on disk. A write the filesystem refuses for a reason
that a retry cannot change (``ENAMETOOLONG``, ``EINVAL``, ``EILSEQ``, ``EFBIG``) raises
:class:`FolderWriteRejected`, which the runner dead-letters at once; other OS errors
(disk full, permissions, I/O) are transient and walk the retry ladder.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import re
import shutil
import unicodedata
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adapters.contract import Delivery, DeliveryReceipt
from adapters.errors import PermanentDeliveryError, TransientDeliveryError

MANIFEST = "manifest.json"
TMP_PREFIX = ".tmp-"
#: Longest file name in UTF-8 bytes: Linux ``NAME_MAX`` (ext4, xfs, btrfs, tmpfs). Windows and
#: SMB allow 255 UTF-16 code units, never fewer than the UTF-8 bytes of the same name.
NAME_MAX = 255
_UNSAFE = re.compile(r'[\x00-\x1f/\\:*?"<>|]')
#: Characters Windows forbids in a name (besides controls): replaced by ``_``.
_WINDOWS_FORBIDDEN = re.compile(r'[\\/:*?"<>|]')
#: Leading characters that hide a file (``.``) or read as an option (``-``); trailing dots and
#: spaces, which Windows strips (two names would meet) — all removed.
_EDGES = re.compile(r"^[\s.\-]+|[\s.]+$")
#: Device names Windows reserves in any case, with or without an extension ("NUL.tar.gz" is
#: NUL) and with trailing spaces before it ("CON .txt"); Microsoft, "Naming Files, Paths, and
#: Namespaces". Superscript digits count as digits there.
_DEVICES = frozenset({"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$",
                      *(f"{p}{d}" for p in ("COM", "LPT") for d in "0123456789¹²³")})
#: An extension kept whole when a name is cut: letters and digits only, at most 16 of them.
_MAX_EXT = 16


class FolderWriteRejected(PermanentDeliveryError):
    """The filesystem refused a file for a reason no retry can change: the name (or the whole
    path under a deep root) is too long for it, it holds characters the filesystem does not
    accept, the file is bigger than it allows."""

    code = "FOLDER_WRITE_REJECTED"


#: ``errno`` values that will be the same on every retry of the same document, by code.
_PERMANENT_ERRNOS = {
    errno.ENAMETOOLONG: "FOLDER_NAME_TOO_LONG",
    errno.EINVAL: "FOLDER_NAME_INVALID",
    errno.EILSEQ: "FOLDER_NAME_INVALID",
    errno.EFBIG: "FOLDER_FILE_TOO_LARGE",
}


def _clean_char(ch: str) -> str:
    """Format characters (bidi controls such as U+202E, zero-width ones, BOM, soft hyphen)
    vanish; controls (C0, DEL, C1), line/paragraph separators (U+2028/U+2029) and lone
    surrogates become ``_``; characters Windows forbids become ``_``."""
    category = unicodedata.category(ch)
    if category == "Cf":
        return ""
    if category in ("Cc", "Cs", "Zl", "Zp") or _WINDOWS_FORBIDDEN.match(ch):
        return "_"
    return ch


def _extends(ch: str) -> bool:
    """Does ``ch`` belong to the character before it (a combining mark, a skin-tone modifier)?"""
    return unicodedata.category(ch) in ("Mn", "Mc", "Me") or 0x1F3FB <= ord(ch) <= 0x1F3FF


def _cut(text: str, budget: int) -> str:
    """The longest prefix of ``text`` of at most ``budget`` UTF-8 bytes that splits neither a
    code point nor a base character from its combining marks."""
    raw = text.encode("utf-8")
    if len(raw) <= budget:
        return text
    end = len(raw[:budget].decode("utf-8", "ignore"))  # drops a partial trailing code point
    while end > 0 and _extends(text[end]):
        end -= 1  # back to the base whose marks would be cut off ...
    return text[:end]  # ... and leave the base out too


def _neutralise(name: str) -> tuple[str, str]:
    """``(stem, extension)`` of one untrusted name, safe but not yet cut or unique; the stem
    may be empty (nothing usable was left)."""
    name = unicodedata.normalize("NFC", name)
    name = re.split(r"[/\\]", name)[-1]  # a path's last component, either separator
    name = unicodedata.normalize("NFC", "".join(map(_clean_char, name)))
    name = _EDGES.sub("", name)
    stem, dot, ext = name.rpartition(".")
    if not (dot and stem and len(ext) <= _MAX_EXT and ext.isalnum()):
        stem, ext = name, ""
    if name.split(".")[0].rstrip(" ").upper() in _DEVICES:
        stem = "_" + stem
    return stem, f".{ext}" if ext else ""


STATUS_FILE = "status.json"


def business_file(kind: str) -> str:
    """The file naming a typed message's kind (``kind`` is one of the fixed kinds the message
    parser accepts, never free text): ``business-<kind>.json``, ``status.json`` for a status."""
    return STATUS_FILE if kind == "status" else f"business-{kind}.json"


def safe_file_names(names: Sequence[str], *, max_bytes: int = NAME_MAX,
                    reserved: Sequence[str] = (MANIFEST,)) -> list[str]:
    """Turn the untrusted attachment names of one document into file names that are safe
    on Linux and on Windows shares, one per name, in order. The rules, in order:

    1. NFC-normalise (names arrive precomposed or decomposed; NFD costs bytes, compares
       unequal);
    2. keep the last path component, after ``/`` or ``\\``;
    3. drop format characters (bidi controls, zero-width ones); replace controls (C0, DEL,
       C1), U+2028/U+2029, lone surrogates and ``\\/:*?"<>|`` by ``_``;
    4. strip leading dots, hyphens and spaces and trailing dots and spaces;
    5. prefix ``_`` to a Windows device name (``CON``, ``nul.txt``, ``COM1 .log``...);
    6. nothing left: ``file-<ordinal>``;
    7. cut to ``max_bytes`` UTF-8 bytes (``NAME_MAX``), keeping the extension and whole
       characters;
    8. a name equal, case-insensitively as on Windows, to an earlier one or to one of
       ``reserved`` (``manifest.json``, the business file) gets `` (2)``, `` (3)``... before
       its extension.

    Pure: the same names always give the same result. ``max_bytes`` must leave room for the
    longest extension kept (16 characters) and a counter, so it is at least 100.
    """
    if max_bytes < 100:
        raise ValueError("max_bytes must be at least 100")
    taken = {r.casefold() for r in reserved}
    out: list[str] = []
    for ordinal, name in enumerate(names, start=1):
        stem, ext = _neutralise(name)
        if not stem:
            stem, ext = f"file-{ordinal}", ""
        n = 1
        while True:
            mark = f" ({n})" if n > 1 else ""
            cut = _cut(stem, max_bytes - len(ext.encode()) - len(mark.encode()))
            candidate = _EDGES.sub("", cut) + mark + ext
            if candidate.casefold() not in taken:
                break
            n += 1
        taken.add(candidate.casefold())
        out.append(candidate)
    return out


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "xb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


class FolderAdapter:
    kind = "folder"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def final_dir(self, agency: str, message_id: str) -> Path:
        for part in (agency, message_id):
            if not part or part in (".", "..") or _UNSAFE.search(part) or part.startswith("."):
                raise PermanentDeliveryError(f"unsafe path component {part!r}",
                                             code="FOLDER_UNSAFE_NAME")
        return self.root / agency / message_id

    async def deliver(self, delivery: Delivery) -> DeliveryReceipt | None:
        final = self.final_dir(delivery.agency, delivery.message_id)
        if final.is_dir():
            return DeliveryReceipt(reference=str(final), detail="already delivered")
        files: list[tuple[str, bytes]] = []
        entries: list[dict[str, Any]] = []
        extra = business_file(delivery.kind) if delivery.kind != "document" else None
        names = safe_file_names([att.name for att in delivery.attachments],
                                reserved=(MANIFEST, extra) if extra else (MANIFEST,))
        for att, name in zip(delivery.attachments, names, strict=True):
            data = await delivery.fetch_attachment(att)
            files.append((name, data))
            entries.append({"id": att.id, "name": att.name, "file": name, "size": att.size,
                            "sha256": att.sha256, "content_type": att.content_type})
        manifest = delivery.metadata()
        manifest["files"] = entries
        # A lone surrogate (legal in a JSON string escape, not in UTF-8) is written back as
        # its escape ``\udXXX`` — inside a JSON string, so the manifest still reads the same.
        body = json.dumps(manifest, ensure_ascii=False, indent=2).encode(
            "utf-8", "backslashreplace")
        if extra:
            block = ({"status": delivery.status, "edxml_document_id": delivery.edxml_document_id}
                     if delivery.kind == "status" else {"business": delivery.business})
            files.append((extra, json.dumps(
                {"kind": delivery.kind, "document_id": delivery.document_id, **block},
                ensure_ascii=False, indent=2).encode("utf-8", "backslashreplace")))
        try:
            created = await asyncio.to_thread(self._write_atomically, final, files, body)
        except OSError as exc:
            where = f"{final}" + (f" ({os.path.basename(exc.filename)})"
                                  if isinstance(exc.filename, str) else "")
            code = _PERMANENT_ERRNOS.get(exc.errno or 0)
            if code is not None:
                raise FolderWriteRejected(f"cannot write {where}: {exc.strerror or exc}",
                                          code=code) from None
            raise TransientDeliveryError(f"cannot write {where}: {exc.strerror or exc}",
                                         code="FOLDER_WRITE_FAILED") from None
        detail = "written" if created else "already delivered"
        return DeliveryReceipt(reference=str(final), detail=detail)

    @staticmethod
    def _write_atomically(final: Path, files: list[tuple[str, bytes]], manifest: bytes) -> bool:
        """Write into a temp dir and rename it to ``final``; False if ``final`` already exists."""
        parent = final.parent
        parent.mkdir(parents=True, exist_ok=True)
        for stale in parent.glob(f"{TMP_PREFIX}{final.name}-*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by a crash mid-write
        tmp = parent / f"{TMP_PREFIX}{final.name}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            for name, data in files:
                _write_file(tmp / name, data)
            _write_file(tmp / MANIFEST, manifest)
            _fsync_dir(tmp)
            try:
                os.rename(tmp, final)
            except OSError:
                if final.is_dir():
                    return False  # a concurrent writer won: same document, already there
                raise
            _fsync_dir(parent)
            return True
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
