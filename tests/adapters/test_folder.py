"""The drop-folder adapter: atomic directories, idempotent redelivery, safe names."""

from __future__ import annotations

import asyncio
import base64
import errno
import json
import os
import re
import unicodedata
from pathlib import Path

import pytest

from adapters.contract import Delivery
from adapters.errors import PermanentDeliveryError, TransientDeliveryError
from adapters.folder import FolderAdapter, safe_file_names
from adapters.message import parse_delivery
from adapters.sdk import AdapterRunner, MemoryDedupStore
from tests.adapters.helpers import AGENCY, delivery_message, drain, publish_delivery, sha256
from tests.conftest import AMQP_URL, wait_for


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


# -- hostile names -----------------------------------------------------------------------------

VN_TITLE = ("Quyết định về việc phê duyệt kế hoạch triển khai ứng dụng công nghệ thông tin, "
            "phát triển chính quyền số và bảo đảm an toàn thông tin mạng giai đoạn 2026–2030 "
            "của Ủy ban nhân dân tỉnh Thừa Thiên Huế và các sở, ban, ngành trực thuộc")
RESERVED = ["CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)),
            *(f"LPT{i}" for i in range(10)), "COM¹", "COM²", "COM³", "LPT¹", "LPT²", "LPT³"]
BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"

HOSTILE: list[str] = [
    VN_TITLE + ".pdf",                                        # 306 bytes, the reported case
    unicodedata.normalize("NFD", VN_TITLE) + ".docx",         # same, decomposed: NFC first
    VN_TITLE * 2,                                             # no extension
    "a" * 300,
    "b" * 296 + ".pdf",
    "c" * 249 + "😀😀" + ".pdf",                               # the cut falls inside an emoji
    "đ" * 124 + "e\u0301\u0323" + "x" * 10 + ".pdf",          # ... and inside a grapheme
    "👨‍👩‍👧" * 40 + ".png",                                         # ZWJ sequences
    *RESERVED,
    *(f"{r.lower()}.pdf" for r in RESERVED),
    *(f"{r.title()}.tar.gz" for r in RESERVED),
    "NUL .txt", "con.", "Aux  ", "prn...", "CONIN$", "conout$.log",
    "hóa đơn\u202efdp.exe",                                   # right-to-left override
    "x" + BIDI + "y.pdf",
    "c1\x85\x9b\x9fcontrols.pdf",
    "line\u2028para\u2029sep.pdf",
    "nul\x00byte.pdf",
    "tab\there\nnewline\r.pdf",
    "del\x7f.pdf",
    "lone\ud800surrogate.pdf",
    "soft\u00adhyphen\ufeffbom\u200bzw.pdf",
    "../x", "..\\..\\windows\\system.ini", "/etc/passwd", "C:\\Users\\a\\evil.dll",
    "dir/", "....", "..", ".", "", "   ", " . . ", "\u202e", "\x00",
    "-rf", "--help.pdf", ".bashrc", "..hidden.pdf", ".tmp-x",
    'wild<card>:"quote"|pipe?*.pdf',
    "manifest.json", "MANIFEST.JSON", "a.pdf", "A.PDF", "a\u202e.pdf", "a.pdf",
]
NAME_MAX = 255
FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}
_EXT = re.compile(r"\.([A-Za-z0-9]{1,10})\Z")


def _expected_extension(original: str) -> str | None:
    """The extension a reader sees in the original name (after the last separator)."""
    last = re.split(r"[/\\]", original)[-1].rstrip(" .")
    match = _EXT.search(last)
    return match.group(0) if match and match.start() > 0 else None


def _assert_safe(file: str) -> None:
    assert len(file.encode("utf-8")) <= NAME_MAX, file
    assert unicodedata.is_normalized("NFC", file), file
    bad = {ch for ch in file if unicodedata.category(ch) in FORBIDDEN_CATEGORIES}
    assert not bad, (file, bad)
    assert not set('/\\:*?"<>|') & set(file), file
    assert file not in ("", ".", "..") and file[0] not in ".- " and file[-1] not in ". ", file
    device = file.split(".")[0].rstrip(" ").upper()
    assert device not in {*RESERVED, "CONIN$", "CONOUT$"}, file
    assert not file.startswith(".tmp-") and file.casefold() != "manifest.json", file


def _inline_attachment(index: int, name: str, body: bytes) -> dict[str, object]:
    return {"id": f"att-{index}", "name": name, "description": None,
            "content_type": "application/pdf", "size": len(body), "sha256": sha256(body),
            "url": f"http://127.0.0.1:9/files/{index}",
            "inline_base64": base64.b64encode(body).decode()}


def _deep_root(tmp_path: Path, length: int = 3900) -> Path:
    """A root so deep that a 255-byte name pushes a path past PATH_MAX (4096) but a short
    one does not: the kernel itself answers ENAMETOOLONG, no fault injection."""
    root = tmp_path
    while (room := length - len(str(root)) - 1) > 0:
        root = root / ("d" * min(200, room))
    return root


async def test_hostile_names_are_written_safely(tmp_path: Path):
    """Every hostile name becomes a distinct, safe file holding exactly its attachment's bytes."""
    msg = delivery_message(files={}, inline=True)
    msg["attachments"] = [_inline_attachment(i, name, f"body {i}".encode())
                          for i, name in enumerate(HOSTILE)]
    delivery = Delivery.of(parse_delivery(json.dumps(msg).encode()))  # \ud800 stays escaped
    await FolderAdapter(tmp_path).deliver(delivery)
    final = tmp_path / AGENCY / delivery.message_id
    manifest = json.loads((final / "manifest.json").read_text(encoding="utf-8"))
    entries = manifest["files"]
    assert [e["name"] for e in entries] == HOSTILE
    on_disk = sorted(os.listdir(final))
    assert on_disk == sorted([*(e["file"] for e in entries), "manifest.json"])
    assert len({f.casefold() for f in on_disk}) == len(on_disk)  # distinct on Windows shares too
    for i, entry in enumerate(entries):
        file = entry["file"]
        _assert_safe(file)
        assert (final / file).read_bytes() == f"body {i}".encode()
        ext = _expected_extension(unicodedata.normalize("NFC", entry["name"]))
        if ext is not None:
            assert file.endswith(ext), (entry["name"], file)


@pytest.mark.parametrize(("names", "expected"), [
    (["CON"], ["_CON"]),
    (["nul.tar.gz"], ["_nul.tar.gz"]),
    (["Com1 .txt"], ["_Com1.txt"]),                          # Windows: "COM1 .txt" is COM1
    (["LPT9."], ["_LPT9"]),
    (["CONSOLE.pdf"], ["CONSOLE.pdf"]),                       # only the exact device names
    (["../x"], ["x"]),
    (["..\\..\\etc\\passwd"], ["passwd"]),
    (["....", "", "\u202e", "../"], ["file-1", "file-2", "file-3", "file-4"]),
    (["-rf", ".bashrc"], ["rf", "bashrc"]),
    (["invoice\u202efdp.exe"], ["invoicefdp.exe"]),
    (["a\x85b\u2028c\x00d.pdf"], ["a_b_c_d.pdf"]),
    (["e\u0301.pdf"], ["é.pdf"]),
    (["a.pdf", "A.PDF", "a.pdf"], ["a.pdf", "A (2).PDF", "a (3).pdf"]),
    (["manifest.json"], ["manifest (2).json"]),
    (["x.pdf", "x (2).pdf", "x.pdf"], ["x.pdf", "x (2).pdf", "x (3).pdf"]),
])
def test_safe_file_names_table(names: list[str], expected: list[str]):
    assert safe_file_names(names) == expected


def test_truncation_is_byte_safe_and_keeps_the_extension():
    [vn] = safe_file_names([VN_TITLE + ".pdf"])
    assert vn.endswith(".pdf") and len(vn.encode()) <= NAME_MAX
    assert len(vn.encode()) > NAME_MAX - 8  # cut at the byte limit, not at a character count
    assert (VN_TITLE + ".pdf").startswith(vn[:-4])
    [emoji] = safe_file_names(["c" * 249 + "😀😀" + ".pdf"])
    assert emoji == "c" * 249 + ".pdf"  # the half emoji is dropped, not split
    [mark] = safe_file_names(["đ" * 124 + "e\u0301\u0323x.pdf"])
    assert mark == "đ" * 124 + ".pdf"  # "ẹ" fits, its acute not: neither is kept
    [plain] = safe_file_names(["a" * 300])
    assert plain == "a" * 255
    twins = safe_file_names(["b" * 296 + ".pdf"] * 2)
    assert twins == ["b" * 251 + ".pdf", "b" * 247 + " (2).pdf"]


async def test_too_long_path_is_a_permanent_error(tmp_path: Path):
    """A name the filesystem refuses (ENAMETOOLONG here, from the kernel) is not retried."""
    root = _deep_root(tmp_path)
    fits = _delivery(files={"ok.pdf": b"fits"}, inline=True)
    await FolderAdapter(root).deliver(fits)
    with pytest.raises(PermanentDeliveryError) as err:
        await FolderAdapter(root).deliver(_delivery(files={VN_TITLE + ".pdf": b"x"},
                                                    inline=True))
    assert err.value.code == "FOLDER_NAME_TOO_LONG"
    assert os.listdir(root / AGENCY) == [fits.message_id]  # no temp directory left


@pytest.mark.parametrize(("errno_", "code"), [
    (errno.ENAMETOOLONG, "FOLDER_NAME_TOO_LONG"),
    (errno.EINVAL, "FOLDER_NAME_INVALID"),
    (errno.EILSEQ, "FOLDER_NAME_INVALID"),
    (errno.EFBIG, "FOLDER_FILE_TOO_LARGE"),
])
async def test_errors_that_cannot_heal_are_permanent(tmp_path: Path, monkeypatch, errno_, code):
    import adapters.folder as folder

    def refuse(path, data):
        raise OSError(errno_, os.strerror(errno_), str(path))

    monkeypatch.setattr(folder, "_write_file", refuse)
    with pytest.raises(PermanentDeliveryError) as err:
        await FolderAdapter(tmp_path).deliver(_delivery(files={"a.pdf": b"x"}, inline=True))
    assert err.value.code == code and "a.pdf" in str(err.value)
    assert list((tmp_path / AGENCY).iterdir()) == []


async def test_unwritable_name_is_dead_lettered_once(bus, tmp_path: Path):
    """Through the real runner and broker: one ``dead`` outcome, no ``retrying`` walk."""
    root = _deep_root(tmp_path)
    msg = delivery_message(files={VN_TITLE + ".pdf": b"%PDF-1.7"}, inline=True)
    runner = AdapterRunner(FolderAdapter(root), amqp_url=AMQP_URL, topology=bus.topology,
                           agency=AGENCY, gateway_token=None, dedup=MemoryDedupStore(),
                           publish_deadline=20.0)
    await runner.start()
    try:
        await publish_delivery(bus.publisher, bus.topology, msg)
        await wait_for(lambda: runner.stats.dead == 1)
        await asyncio.sleep(0.5)  # longer than a retry step: nothing may come back
    finally:
        await runner.stop()
    assert runner.stats.retried == 0 and runner.stats.dead == 1
    await bus.outcomes.poll()
    [outcome] = [o for o in bus.outcomes.items if o["message_id"] == msg["message_id"]]
    assert outcome["outcome"] == "dead" and outcome["attempt"] == 1
    assert outcome["error"].startswith("FOLDER_NAME_TOO_LONG: ")
    dead = await wait_for(lambda: drain(bus.channel, bus.topology.dead_queue(AGENCY)))
    assert len(dead) == 1 and dead[0].headers["x-error-code"] == "FOLDER_NAME_TOO_LONG"
