"""The drop-folder adapter: each document becomes one directory an eOffice picks up.

Layout: ``<root>/<agency>/<message_id>/`` holding the attachments and ``manifest.json``
(the delivery metadata plus, per file, the name on disk, size and sha256).

The rule: a directory under its final name is always complete. Everything is written into
``<root>/<agency>/.tmp-<message_id>-<random>`` on the same filesystem, each file fsynced,
then the directory is renamed into place and the parent fsynced. An existing final
directory means the document was already delivered (idempotent redelivery). Directories
starting with ``.tmp-`` are never to be picked up by the eOffice.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

from adapters.contract import Delivery, DeliveryReceipt
from adapters.errors import PermanentDeliveryError, TransientDeliveryError

MANIFEST = "manifest.json"
TMP_PREFIX = ".tmp-"
_UNSAFE = re.compile(r'[\x00-\x1f/\\:*?"<>|]')


def safe_name(name: str, taken: set[str]) -> str:
    """A file name that cannot escape the directory, clash with the manifest or a sibling."""
    base = _UNSAFE.sub("_", os.path.basename(name.replace("\\", "/"))).strip(" .") or "file"
    base = base[:200]
    candidate, n = base, 1
    while candidate in taken or candidate == MANIFEST or candidate.startswith(TMP_PREFIX):
        candidate = f"{n}-{base}"
        n += 1
    taken.add(candidate)
    return candidate


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
        taken: set[str] = set()
        for att in delivery.attachments:
            data = await delivery.fetch_attachment(att)
            name = safe_name(att.name, taken)
            files.append((name, data))
            entries.append({"id": att.id, "name": att.name, "file": name, "size": att.size,
                            "sha256": att.sha256, "content_type": att.content_type})
        manifest = delivery.metadata()
        manifest["files"] = entries
        body = json.dumps(manifest, ensure_ascii=False, indent=2).encode()
        try:
            created = await asyncio.to_thread(self._write_atomically, final, files, body)
        except OSError as exc:
            raise TransientDeliveryError(f"cannot write {final}: {exc.strerror or exc}",
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
