"""Secret documents are refused however the mark is written (gateway.edxml.secrecy)."""

from __future__ import annotations

import pytest

from gateway.edxml import EDXML_NS, build
from gateway.edxml.secrecy import fold, marker_is_secret, text_is_secret

from .helpers import NS, to_bytes, tree
from .scenarios import new_document
from .test_hostile import code_of

DOC = build(new_document())
H = "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader"


@pytest.mark.parametrize("text", [
    "Mật", "MẬT", "Tối mật", "tuyệt mật", "Văn bản mật", "Độ mật: Mật",
    "M\u00adật",                 # soft hyphen inside the word
    "M\u200bẬT",                 # zero-width space
    "Tối\u200d mật",             # zero-width joiner
    "Ma\u0302\u0323t",           # decomposed (NFD) diacritics
    "ＭẬＴ",                      # full-width letters (NFKC)
    "TOI MAT", "tuyet mat", "Van ban mat", "mat",  # typed without diacritics
])
def test_free_text_that_declares_secrecy(text):
    assert text_is_secret(text)


@pytest.mark.parametrize("text", [
    None, "", "Toàn quốc", "Mặt trận Tổ quốc", "Các cơ quan thuộc tỉnh", "Không mật",
    "Mat tran To quoc", "Thuong",
])
def test_free_text_that_does_not(text):
    assert not text_is_secret(text)


@pytest.mark.parametrize("value, secret", [
    ("", False), ("0", False), ("Thường", False), ("thuong", False), ("Không mật", False),
    ("Bình thường", False), ("1", True), ("2", True), ("3", True), ("Mật", True),
    ("TOI MAT", True), ("x", True), ("Tuyệt\u00admật", True),
])
def test_dedicated_marker_fails_closed(value, secret):
    assert marker_is_secret(value) is secret


def test_fold():
    assert fold("  M\u00ADẬT\u200b  tối ") == "mật tối"


def _with_marker(parent_xpath: str, name: str, value: str) -> bytes:
    root = tree(DOC)
    parent = root.find(parent_xpath, NS)
    el = parent.makeelement(f"{{{EDXML_NS}}}{name}", {})
    el.text = value
    parent.append(el)
    return to_bytes(root)


@pytest.mark.parametrize("parent, name, value, path", [
    (".//e:OtherInfo", "DoMat", "2", f"{H}/OtherInfo/DoMat"),
    (".//e:OtherInfo", "SecretLevel", "M\u200bật", f"{H}/OtherInfo/SecretLevel"),
    (".//e:MessageHeader", "SecurityLevel", "Tuyet mat", f"{H}/SecurityLevel"),  # not in OtherInfo
    (".//e:SignerInfo", "Secret", "Mật", f"{H}/SignerInfo/Secret"),              # nested deeper
])
def test_marker_anywhere_in_the_header_is_refused(parent, name, value, path):
    err = code_of(_with_marker(parent, name, value))
    assert (err.code, err.path) == ("EDXML_SECRET_DOCUMENT", path)


def test_not_secret_marker_is_accepted():
    from gateway.edxml import parse

    msg = parse(_with_marker(".//e:OtherInfo", "DoMat", "Thường"))
    assert msg.document_id
