"""The optional accelerators (pybase64, zlib-ng) give exactly the stdlib results.

Every case is run twice: with whatever accelerators are installed, and with the stdlib
fallback forced (``payload._pybase64 = None``, ``payload._zlib = zlib``). Parsed messages,
error codes and built bytes must be identical.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import os
import random
import struct
import zipfile
import zlib

import pytest

from gateway.edxml import Attachment, EdxmlError, Limits, build, parse
from gateway.edxml import payload as P

from .scenarios import new_document

MiB = 1024 * 1024
DOC = build(new_document())
OPEN = b"<edXML:ContentTransferEncoded>"
CLOSE = b"</edXML:ContentTransferEncoded>"


@pytest.fixture
def stdlib(monkeypatch):
    """Force the pure-stdlib path for the duration of a call."""

    class Forced:
        def __enter__(self):
            monkeypatch.setattr(P, "_pybase64", None)
            monkeypatch.setattr(P, "_zlib", zlib)
            assert P.accelerators() == {"base64": "binascii", "zlib": "zlib"}

        def __exit__(self, *exc):
            monkeypatch.undo()

    return Forced()


def _outcome(data: bytes, limits: Limits | None = None):
    try:
        msg = parse(data, limits)
    except EdxmlError as exc:
        return ("error", exc.code, exc.path)
    return ("ok", msg)


def _both(stdlib, data: bytes, limits: Limits | None = None):
    fast = _outcome(data, limits)
    with stdlib:
        slow = _outcome(data, limits)
    assert fast == slow
    return fast


def _with_payload(payload: bytes, data: bytes = DOC) -> bytes:
    start = data.index(OPEN) + len(OPEN)
    end = data.index(CLOSE, start)
    return data[:start] + payload + data[end:]


def _zip(data: bytes, method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        zf.writestr("a.pdf", data)
    return buf.getvalue()


def _doc(data: bytes) -> bytes:
    doc = new_document()
    att = dataclasses.replace(doc.attachments[0], data=data)
    return build(dataclasses.replace(doc, attachments=(att,)))


def test_accelerators_are_reported():
    acc = P.accelerators()
    assert acc["base64"] in ("pybase64", "binascii")
    assert acc["zlib"] in ("zlib-ng", "zlib")


@pytest.mark.parametrize("size", [0, 1, 300, 70_000, MiB + 7])
@pytest.mark.parametrize("kind", ["random", "text"])
def test_roundtrip_same_on_both_paths(stdlib, size, kind):
    if kind == "random":
        data = os.urandom(size)
    else:  # compressible, but well within the zip ratio limit
        words = [b"van", b"ban", b"so", b"ngay", b"thang", b"nam", b"cong", b"\n"]
        data = b" ".join(words[b % 8] for b in os.urandom(size // 3 + 1))[:size]
    built = _doc(data)
    with stdlib:
        assert _doc(data) == built  # build is byte-identical too
    kind_, msg = _both(stdlib, built)
    assert kind_ == "ok" and msg.attachments[0].data == data


def _wrap(text: bytes, width: int, sep: bytes) -> bytes:
    return sep.join(text[i:i + width] for i in range(0, len(text), width))


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
@pytest.mark.parametrize("sep", [b"\n", b"\r\n", b" \t\n "])
def test_wrapped_base64_same_on_both_paths(stdlib, method, sep):
    data = os.urandom(5000) + b"abc" * 3000
    payload = _wrap(base64.b64encode(_zip(data, method)), 76, sep) + sep
    kind, msg = _both(stdlib, _with_payload(payload))
    assert kind == "ok" and msg.attachments[0].data == data


@pytest.mark.parametrize("payload", [
    b"QUJ" * 201,                                        # length not a multiple of 4
    b"QUJD" * 100 + b"=" + b"QUJD" * 100,                 # padding in the middle
    b"QUJD" * 100 + b"QQ==" + b"QUJD" * 100,              # data after complete padding
    b"QUJD" * 100 + b"QQ===",                             # excess padding
    b"QUJD" * 100 + b"QR==",                              # non-zero padding bits
    b"QUJD" * 100 + b"!-_" + b"QUJD" * 100,               # junk that binascii skips
    b"QUJD" * 100 + b"\x0b\x0c" + b"QUJD" * 100,          # non-XML whitespace
    b"QU\nJD" * 100 + b"Q\n=\n=",                         # padding split by line breaks
    b"QUJD" * 100 + b"Q",                                 # a lone trailing character
])
def test_odd_base64_same_on_both_paths(stdlib, payload):
    _both(stdlib, _with_payload(payload))


def test_hostile_zips_same_on_both_paths(stdlib):
    good = _zip(b"hello world " * 1000)
    corrupt = bytearray(good)
    corrupt[40] ^= 0xFF
    bad_crc = bytearray(good)
    central = bytes(bad_crc).rindex(b"PK\x01\x02")
    struct.pack_into("<I", bad_crc, 14, 0xDEADBEEF)
    struct.pack_into("<I", bad_crc, central + 16, 0xDEADBEEF)
    stored = bytearray(_zip(os.urandom(4000), zipfile.ZIP_STORED))
    stored[100] ^= 0x01
    bomb = bytearray(_zip(bytes(5 * MiB)))
    struct.pack_into("<I", bomb, 22, 1000)
    central = bytes(bomb).rindex(b"PK\x01\x02")
    struct.pack_into("<I", bomb, central + 24, 1000)
    cases = {
        "corrupt": (bytes(corrupt), "EDXML_BAD_ZIP"),
        "bad_crc": (bytes(bad_crc), "EDXML_BAD_ZIP"),
        "stored_bitflip": (bytes(stored), "EDXML_BAD_ZIP"),
        "truncated": (good[:-40], "EDXML_BAD_ZIP"),
        "ratio": (_zip(bytes(20 * MiB)), "EDXML_ZIP_RATIO"),
        "lying_bomb": (bytes(bomb), None),
    }
    for name, (zipped, code) in cases.items():
        outcome = _both(stdlib, _with_payload(base64.b64encode(zipped)))
        assert outcome[0] == "error", name
        if code is not None:
            assert outcome[1] == code, name
    outcome = _both(stdlib, _with_payload(base64.b64encode(_zip(b"ab" * MiB))),
                    Limits(max_attachment_size=MiB))
    assert outcome[1] == "EDXML_ATTACHMENT_TOO_LARGE"


def test_decode_base64_is_strict_and_same_on_both_paths_on_random_input(stdlib):
    if P.accelerators()["base64"] != "pybase64":
        pytest.skip("pybase64 is not installed")
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    extra = [b"=", b"==", b"\n", b"\r\n", b" ", b"\t", b"!", b"-", b"_", b"\x00", b"\xff", b"\x0b"]
    rnd = random.Random(20240301)

    def result(text):
        try:
            return P.decode_base64(text)
        except binascii.Error:
            return "error"

    for _ in range(20_000):
        parts = []
        for _ in range(rnd.randint(0, 30)):
            x = rnd.random()
            parts.append(bytes([rnd.choice(alphabet)]) if x < 0.75 else rnd.choice(extra))
        text = b"".join(parts)
        view = memoryview(b"<" + text + b">")[1:-1]
        fast = result(view)
        with stdlib:
            slow = result(view)
        assert fast == slow, text
        # the rule itself (RFC 4648 §3.3, XML white space allowed): nothing outside the
        # alphabet is skipped, the rest is whole quads with at most "==" at the very end
        compact = text.translate(None, b" \t\r\n")
        body = compact.rstrip(b"=")
        well_formed = (len(compact) % 4 == 0 and len(compact) - len(body) <= 2
                       and all(c in alphabet for c in body))
        if not well_formed:
            assert fast == "error", text


def test_cdata_anywhere_disables_the_cut():
    data = _doc(os.urandom(4000))
    assert P.cut_payloads(data).spans
    subject = data.index(b"<edXML:Subject>") + len(b"<edXML:Subject>")
    after = data.index(CLOSE) + len(CLOSE)
    for with_cdata in (data[:subject] + b"<![CDATA[x]]>" + data[subject:],
                       data[:after] + b"<!-- <![CDATA[ -->" + data[after:]):
        skeleton = P.cut_payloads(with_cdata)
        assert skeleton.spans == [] and skeleton.xml == with_cdata
        assert parse(with_cdata).attachments[0].size == 4000


def test_cdata_payload_still_parses(stdlib):
    data = os.urandom(3000)
    payload = b"<![CDATA[" + base64.b64encode(_zip(data)) + b"]]>"
    kind, msg = _both(stdlib, _with_payload(payload))
    assert kind == "ok" and msg.attachments[0].data == data


def test_sha256_stays_lazy():
    assert isinstance(Attachment.sha256, property)
    assert "sha256" not in Attachment.__slots__


def _tags(root):
    return [el.tag for el in root.iter() if isinstance(el.tag, str)]


@pytest.mark.parametrize("opener, closer", [
    (b"<!-- ", b" -->"),                       # comment: its end was inside the cut span
    (b"<?note ", b" ?>"),                      # processing instruction: same with "?>"
])
def test_cut_never_changes_which_elements_exist(opener, closer, monkeypatch):
    """A start tag inside a comment or PI, followed by base64-looking text and the comment's
    end, must not be cut: the skeleton would then extend the comment over the next elements
    (here a whole ``To``), and the parsed message would lose a receiver."""
    from lxml import etree

    from gateway.edxml import loader
    from gateway.edxml.loader import parse_tree

    first_to = DOC.index(b"<edXML:To>")
    bait = opener + OPEN + b"A" * 400 + closer
    hidden = b"\n" + closer.strip() + b"\n"  # text in the original, the end in the skeleton
    data = DOC[:first_to] + bait + DOC[first_to:]
    # close the attacker's comment again after the first To, so the rest stays valid
    after_to = data.index(b"</edXML:To>") + len(b"</edXML:To>")
    data = data[:after_to] + hidden + data[after_to:]

    full = parse_tree(data)
    skeleton = P.cut_payloads(data)
    assert _tags(parse_tree(skeleton.xml)) == _tags(full)
    assert len(full.findall(".//{*}To")) == 3  # the three receivers, none hidden

    outcome = _outcome(data)
    monkeypatch.setattr(loader, "cut_payloads", lambda d: P.Skeleton(d, "x", []))
    assert _outcome(data) == outcome
    assert etree.QName(full).localname == "edXML"


@pytest.mark.parametrize("payload", [
    b"A" * 300 + b"--" + b"A" * 300,           # "--": forbidden in comments, never cut
    b"A" * 300 + b"&#65;" + b"A" * 300,        # character reference
])
def test_spans_with_markup_characters_are_left_to_lxml(payload):
    data = _with_payload(payload)
    skeleton = P.cut_payloads(data)
    start = data.index(OPEN) + len(OPEN)
    assert all(s != start for s, _ in skeleton.spans)


def test_cut_requires_the_matching_end_tag_right_after_the_text():
    data = _doc(os.urandom(4000))
    start = data.index(OPEN) + len(OPEN)
    assert [s for s, _ in P.cut_payloads(data).spans] == [start]
    # the text followed by a child element (not the end tag): not a payload span
    end = data.index(CLOSE, start)
    odd = data[:end] + b"<edXML:X/>" + data[end:]
    assert all(s != start for s, _ in P.cut_payloads(odd).spans)
