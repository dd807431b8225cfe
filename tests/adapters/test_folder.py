"""The drop-folder adapter: atomic directories, idempotent redelivery, safe names."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from adapters.contract import Delivery
from adapters.errors import TransientDeliveryError
from adapters.folder import FolderAdapter, safe_name
from adapters.message import parse_delivery
from tests.adapters.helpers import AGENCY, delivery_message, sha256


def _delivery(**kw) -> Delivery:
    return Delivery.of(parse_delivery(json.dumps(delivery_message(**kw)).encode()))


async def test_writes_files_and_manifest(tmp_path: Path):
    files = {"công văn.pdf": b"%PDF-1.7 main", "phu-luc.docx": b"PK\x03\x04 annex"}
    delivery = _delivery(files=files, inline=True)
    receipt = await FolderAdapter(tmp_path).deliver(delivery)
    final = tmp_path / AGENCY / delivery.message_id
    assert receipt is not None and receipt.reference == str(final)
    assert sorted(p.name for p in final.iterdir()) == sorted([*files, "manifest.json"])
    manifest = json.loads((final / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["message_id"] == delivery.message_id
    assert manifest["header"]["Subject"] == "Công văn thử nghiệm"
    for entry in manifest["files"]:
        data = (final / entry["file"]).read_bytes()
        assert sha256(data) == entry["sha256"] and len(data) == entry["size"]
        assert "inline_base64" not in json.dumps(manifest)
    assert [p.name for p in (tmp_path / AGENCY).iterdir()] == [delivery.message_id]  # no temp


async def test_redelivery_is_idempotent(tmp_path: Path):
    delivery = _delivery(files={"a.pdf": b"one"}, inline=True)
    adapter = FolderAdapter(tmp_path)
    await adapter.deliver(delivery)
    final = tmp_path / AGENCY / delivery.message_id
    before = os.stat(final / "a.pdf").st_mtime_ns
    receipt = await adapter.deliver(delivery)
    assert receipt is not None and receipt.detail == "already delivered"
    assert os.stat(final / "a.pdf").st_mtime_ns == before
    results = await asyncio.gather(*(adapter.deliver(_same) for _same in [delivery] * 3))
    assert all(r is not None for r in results)
    assert len(list((tmp_path / AGENCY).iterdir())) == 1


async def test_failed_write_leaves_no_partial_directory(tmp_path: Path, monkeypatch):
    delivery = _delivery(files={"a.pdf": b"one", "b.pdf": b"two"}, inline=True)
    import adapters.folder as folder

    real = folder._write_file
    calls = []

    def flaky(path, data):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(folder, "_write_file", flaky)
    with pytest.raises(TransientDeliveryError) as err:
        await FolderAdapter(tmp_path).deliver(delivery)
    assert err.value.code == "FOLDER_WRITE_FAILED"
    assert list((tmp_path / AGENCY).iterdir()) == []
    monkeypatch.setattr(folder, "_write_file", real)
    await FolderAdapter(tmp_path).deliver(delivery)
    assert (tmp_path / AGENCY / delivery.message_id / "b.pdf").read_bytes() == b"two"


def test_safe_names():
    taken: set[str] = set()
    assert safe_name("../../etc/passwd", taken) == "passwd"
    assert safe_name("passwd", taken) == "1-passwd"
    assert safe_name("manifest.json", taken) == "1-manifest.json"
    assert safe_name("..", taken) == "file"
    assert safe_name("a\\b:c.pdf", taken) == "b_c.pdf"
    assert safe_name(".tmp-x", taken) == "tmp-x"  # no hidden or temp-looking names
