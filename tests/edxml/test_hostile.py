from __future__ import annotations

import base64
import dataclasses
import io
import struct
import zipfile

import pytest

from gateway.edxml import (
    EDXML_NS,
    Attachment,
    EdxmlError,
    Limits,
    build,
    parse,
)

from .helpers import NS, remove, set_text, to_bytes, tree
from .scenarios import FIXTURES, new_document, status

MiB = 1024 * 1024
DOC = build(new_document())
STATUS = build(status("03", "ok"))
H = "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader"


def code_of(data: bytes, limits: Limits | None = None) -> EdxmlError:
    with pytest.raises(EdxmlError) as exc:
        parse(data, limits)
    return exc.value


def test_xxe_is_refused():
    data = (b'<?xml version="1.0"?>\n<!DOCTYPE edXML [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            + DOC[DOC.index(b"<edXML ") :].replace(b"<edXML:Subject>", b"<edXML:Subject>&xxe;"))
    err = code_of(data)
    assert err.code == "EDXML_DTD_FORBIDDEN"
    assert b"root:" not in str(err).encode()


def test_billion_laughs_is_refused():
    lol = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    data = (f'<?xml version="1.0"?><!DOCTYPE edXML [<!ENTITY l0 "lol">{lol}]>'
            f'<edXML xmlns="{EDXML_NS}">&l9;</edXML>').encode()
    assert code_of(data).code == "EDXML_DTD_FORBIDDEN"


def test_external_dtd_is_refused():
    data = (b'<?xml version="1.0"?><!DOCTYPE edXML SYSTEM "http://127.0.0.1:9/evil.dtd">'
            + DOC[DOC.index(b"<edXML ") :])
    assert code_of(data).code == "EDXML_DTD_FORBIDDEN"


def test_undeclared_entity_is_not_well_formed():
    data = DOC.replace(b"<edXML:Subject>", b"<edXML:Subject>&secret;")
    assert code_of(data).code == "EDXML_NOT_WELL_FORMED"


@pytest.mark.parametrize("data", [
    b'<?xml version="1.0" encoding="windows-1258"?><edXML/>',
    b'<?xml version="1.0" encoding="ISO-8859-1"?><edXML/>',
    "<?xml version='1.0' encoding='UTF-16'?><edXML/>".encode("utf-16"),
    b"<?xml version='1.0'?><edXML>V\xe3n b\xe0n</edXML>",  # windows-1258 bytes, undeclared
])
def test_non_utf8_is_refused(data):
    assert code_of(data).code == "EDXML_ENCODING"


def test_encoding_declaration_padded_past_the_check_is_refused():
    """A declaration whose ``encoding`` sits beyond the first KiB must not slip through."""
    body = DOC[DOC.index(b"<edXML "):].replace(b"<edXML:Subject>", b"<edXML:Subject>caf\xe9 ")
    padded = b'<?xml version="1.0"' + b" " * 2000 + b'encoding="ISO-8859-1"?>\n' + body
    err = code_of(padded)
    assert err.code in ("EDXML_NOT_WELL_FORMED", "EDXML_ENCODING")
    assert "1024" in err.message or "encoding" in err.message.lower()


@pytest.mark.parametrize("data,code", [
    (b"", "EDXML_EMPTY"), (b"   \n", "EDXML_EMPTY"), (b"<edXML", "EDXML_NOT_WELL_FORMED"),
    (b"not xml at all", "EDXML_NOT_WELL_FORMED"),
])
def test_garbage(data, code):
    assert code_of(data).code == code


def test_wrong_namespace_and_root():
    err = code_of(DOC.replace(EDXML_NS.encode(), b"http://example.org/other"))
    assert (err.code, err.path) == ("EDXML_WRONG_NAMESPACE", "/edXML")
    err = code_of(b'<?xml version="1.0"?><Envelope xmlns="x"/>')
    assert err.code == "EDXML_WRONG_ROOT"


def test_document_size_limit():
    err = code_of(DOC, Limits(max_document_size=len(DOC) - 1))
    assert err.code == "EDXML_DOCUMENT_TOO_LARGE"


def _with_payload(payload: bytes, data: bytes = DOC) -> bytes:
    start = data.index(b"<edXML:ContentTransferEncoded>") + len(b"<edXML:ContentTransferEncoded>")
    end = data.index(b"</edXML:ContentTransferEncoded>", start)
    return data[:start] + payload + data[end:]


def test_50_mb_base64_is_refused_before_decoding():
    payload = b"QUFB" * (17 * MiB)  # 68 MB of base64 = 51 MB decoded, over the 50 MB default
    err = code_of(_with_payload(payload))
    assert err.code == "EDXML_ATTACHMENT_TOO_LARGE"
    assert err.path == "/edXML/AttachmentEncoded/Attachment[1]/ContentTransferEncoded"


def test_decoded_size_limit_for_raw_attachment():
    payload = base64.b64encode(b"x" * (MiB + 10))
    err = code_of(_with_payload(payload), Limits(max_attachment_size=MiB))
    assert err.code == "EDXML_ATTACHMENT_TOO_LARGE"


def _zip(data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bomb.pdf", data)
    return buf.getvalue()


def test_zip_bomb_ratio_is_refused():
    bomb = _zip(bytes(20 * MiB))  # 20 MB of zeros deflate to ~20 KB
    err = code_of(_with_payload(base64.b64encode(bomb)))
    assert err.code == "EDXML_ZIP_RATIO"


def test_zip_bomb_lying_about_its_size_is_stopped_while_inflating():
    real = 5 * MiB
    bomb = bytearray(_zip(bytes(real)))
    # Claim 1000 bytes in the local header and the central directory.
    local_size_at = 22
    struct.pack_into("<I", bomb, local_size_at, 1000)
    central = bytes(bomb).rindex(b"PK\x01\x02")
    struct.pack_into("<I", bomb, central + 24, 1000)
    err = code_of(_with_payload(base64.b64encode(bytes(bomb))))
    assert err.code in ("EDXML_ZIP_RATIO", "EDXML_ATTACHMENT_TOO_LARGE")


def test_zip_over_the_attachment_limit_is_refused():
    zipped = _zip(b"abcdefgh" * (MiB // 4))  # 2 MiB, compresses well but within the ratio
    err = code_of(_with_payload(base64.b64encode(zipped)), Limits(max_attachment_size=MiB))
    assert err.code == "EDXML_ATTACHMENT_TOO_LARGE"


@pytest.mark.parametrize("cut", [40, 200])
def test_truncated_zip_is_refused(cut):
    zipped = _zip(bytes(range(256)) * 64)
    err = code_of(_with_payload(base64.b64encode(zipped[:-cut])))
    assert err.code == "EDXML_BAD_ZIP"


def test_corrupt_zip_crc_is_refused():
    zipped = bytearray(_zip(b"hello world " * 100))
    zipped[40] ^= 0xFF  # inside the deflate stream
    err = code_of(_with_payload(base64.b64encode(bytes(zipped))))
    assert err.code == "EDXML_BAD_ZIP"


def test_bad_base64_is_refused():
    err = code_of(_with_payload(b"QUJ" * 201))  # length not a multiple of 4
    assert err.code == "EDXML_BAD_PAYLOAD"


def _the_payload(data: bytes = DOC) -> bytes:
    start = data.index(b"<edXML:ContentTransferEncoded>") + len(b"<edXML:ContentTransferEncoded>")
    return data[start:data.index(b"</edXML:ContentTransferEncoded>", start)]


@pytest.mark.parametrize("junk", [b"****", b"%%", b"\x00\x00\x00\x00", b"\x0b\x0c"])
def test_payload_whose_first_characters_are_junk_is_refused(junk):
    """Issue 11 item 10: a lenient decoder skipped the junk and decoded the shifted rest into a
    garbage "raw" attachment that was then routed."""
    good = _the_payload()
    for corrupt in (junk + good[len(junk):], junk + good):
        err = code_of(_with_payload(corrupt))
        assert err.code == "EDXML_BAD_PAYLOAD", corrupt[:8]
        assert err.path.endswith("/ContentTransferEncoded")


@pytest.mark.parametrize("bad", [b"AAAA", b"X", b"UEsE"])
def test_zip_payload_whose_first_characters_are_changed_is_refused(bad):
    """Characters of the alphabet in place of the first ones decode, but not to a zip local
    header, while the zip's end record is intact: a damaged zip, not a raw file."""
    good = _the_payload()
    assert base64.b64decode(good)[:4] == b"PK\x03\x04"
    err = code_of(_with_payload(bad + good[len(bad):]))
    assert err.code == "EDXML_BAD_PAYLOAD"


@pytest.mark.parametrize("sep", [b"\r\n", b"\n", b" ", b"\t"])
def test_wrapped_payload_is_still_accepted(sep):
    """RFC 2045 line breaks (and XML white space) inside the base64 are legitimate."""
    good = _the_payload()
    wrapped = sep + sep.join(good[i:i + 76] for i in range(0, len(good), 76)) + sep
    assert parse(_with_payload(wrapped)) == parse(DOC)


def test_raw_payload_with_a_zip_inside_is_still_taken_raw():
    """A file that merely holds a zip after other bytes (a self-extracting archive) is raw."""
    data = b"MZ" + bytes(300) + _zip(b"inner " * 100)
    doc = parse(_with_payload(base64.b64encode(data)))
    assert doc.attachments[0].data == data


def test_base64_with_char_references_goes_through_lxml():
    payload = base64.encodebytes(b"%PDF-1.7 " + bytes(range(256)) * 4).replace(b"\n", b"&#13;\n")
    doc = parse(_with_payload(payload))
    assert doc.attachments[0].data.startswith(b"%PDF-1.7 ")


def test_too_many_attachments():
    doc = dataclasses.replace(new_document(), attachments=tuple(
        Attachment(f"c{i}", f"f{i}.txt", "text/plain", b"x") for i in range(4)))
    err = code_of(build(doc), Limits(max_attachments=3))
    assert err.code == "EDXML_TOO_MANY_ATTACHMENTS"


def test_total_attachment_budget():
    doc = dataclasses.replace(new_document(), attachments=tuple(
        Attachment(f"c{i}", f"f{i}.bin", "application/octet-stream", bytes([i]) * 6000)
        for i in range(3)))
    err = code_of(build(doc), Limits(max_total_attachment_size=15000))
    assert err.code == "EDXML_ATTACHMENT_TOO_LARGE"


def test_reference_without_attachment():
    data = remove(DOC, "//e:Attachment[2]")
    err = code_of(data)
    assert err.code == "EDXML_REFERENCE_WITHOUT_ATTACHMENT"
    assert err.path == "/edXML/edXMLEnvelope/edXMLBody/edXMLManifest/Reference[2]"


def test_duplicate_content_ids():
    cid = new_document().attachments[0].content_id
    data = set_text(DOC, "//e:Attachment[2]/e:ContentId", "cid:" + cid)
    assert code_of(data).code == "EDXML_DUPLICATE_CONTENT_ID"
    data = set_text(DOC, "//e:Reference[2]/e:ContentId", cid)
    assert code_of(data).code == "EDXML_DUPLICATE_CONTENT_ID"


@pytest.mark.parametrize("marker", ["Mật", "TỐI MẬT", "tuyệt mật", "Mật", "Văn bản mật"])
def test_secret_documents_are_refused(marker):
    data = set_text(DOC, "//e:OtherInfo/e:SphereOfPromulgation", marker)
    err = code_of(data)
    assert (err.code, err.path) == (
        "EDXML_SECRET_DOCUMENT", f"{H}/OtherInfo/SphereOfPromulgation")


def test_secret_marker_element_is_refused():
    root = tree(DOC)
    other = root.find(".//e:OtherInfo", NS)
    el = other.makeelement(f"{{{EDXML_NS}}}SecretLevel", {})
    el.text = "Tối mật"
    other.append(el)
    assert code_of(to_bytes(root)).code == "EDXML_SECRET_DOCUMENT"


@pytest.mark.parametrize("value,code", [
    ("1", "EDXML_BAD_STATUS_CODE"), ("AB", "EDXML_BAD_STATUS_CODE"),
    ("003", "EDXML_BAD_STATUS_CODE"), ("", "EDXML_BAD_STATUS_CODE"),
])
def test_bad_status_codes(value, code):
    err = code_of(set_text(STATUS, "//e:StatusCode", value))
    assert (err.code, err.path) == (code, f"{H}/StatusCode")


@pytest.mark.parametrize("code", ["02", "13", "16"])
def test_reason_required(code):
    data = set_text(build(status(code, "x")), "//e:Description", "")
    err = code_of(data)
    assert (err.code, err.path) == ("EDXML_MISSING_REASON", f"{H}/Description")


@pytest.mark.parametrize("xpath,text,code", [
    ("//e:PromulgationInfo/e:PromulgationDate", "30/02/2024", "EDXML_BAD_DATE"),
    ("//e:DueDate", "soon", "EDXML_BAD_DATE"),
    ("//e:TraceHeader/e:Timestamp", "2024/03/15 9h", "EDXML_BAD_DATE"),
    ("//e:DocumentType/e:Type", "one", "EDXML_BAD_INTEGER"),
    ("//e:Bussiness/e:BussinessDocType", "7", "EDXML_BAD_VALUE"),
    ("//e:OtherInfo/e:Direction", "maybe", "EDXML_BAD_VALUE"),
    ("//e:MessageHeader/e:DocumentId", "x" * 256, "EDXML_VALUE_TOO_LONG"),
    ("//e:MessageHeader/e:DocumentId", "", "EDXML_EMPTY_VALUE"),
])
def test_bad_values(xpath, text, code):
    assert code_of(set_text(DOC, xpath, text)).code == code


EDOC_REQUIRED = [
    ("./e:edXMLEnvelope", "/edXML/edXMLEnvelope"),
    ("./e:edXMLEnvelope/e:edXMLHeader", "/edXML/edXMLEnvelope/edXMLHeader"),
    ("//e:MessageHeader", "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader"),
    ("//e:MessageHeader/e:From", f"{H}/From"),
    ("//e:From/e:OrganId", f"{H}/From/OrganId"),
    ("//e:MessageHeader/e:To", f"{H}/To"),
    ("//e:To[2]/e:OrganId", f"{H}/To[2]/OrganId"),
    ("//e:MessageHeader/e:DocumentId", f"{H}/DocumentId"),
    ("//e:MessageHeader/e:Code", f"{H}/Code"),
    ("//e:Code/e:CodeNumber", f"{H}/Code/CodeNumber"),
    ("//e:Code/e:CodeNotation", f"{H}/Code/CodeNotation"),
    ("//e:PromulgationInfo", f"{H}/PromulgationInfo"),
    ("//e:PromulgationInfo/e:Place", f"{H}/PromulgationInfo/Place"),
    ("//e:PromulgationInfo/e:PromulgationDate", f"{H}/PromulgationInfo/PromulgationDate"),
    ("//e:DocumentType", f"{H}/DocumentType"),
    ("//e:DocumentType/e:Type", f"{H}/DocumentType/Type"),
    ("//e:DocumentType/e:TypeName", f"{H}/DocumentType/TypeName"),
    ("//e:MessageHeader/e:Subject", f"{H}/Subject"),
    ("//e:SignerInfo", f"{H}/SignerInfo"),
    ("//e:SignerInfo/e:FullName", f"{H}/SignerInfo/FullName"),
    ("//e:TraceHeader/e:Timestamp", "/edXML/edXMLEnvelope/edXMLHeader/TraceHeaderList/"
                                    "TraceHeader/Timestamp"),
    ("//e:Bussiness/e:BussinessDocType", "/edXML/edXMLEnvelope/edXMLHeader/TraceHeaderList/"
                                         "Bussiness/BussinessDocType"),
    ("//e:Attachment[1]/e:ContentTransferEncoded",
     "/edXML/AttachmentEncoded/Attachment[1]/ContentTransferEncoded"),
    ("//e:Attachment[1]/e:ContentId", "/edXML/AttachmentEncoded/Attachment[1]/ContentId"),
    ("//e:Reference[1]/e:ContentId",
     "/edXML/edXMLEnvelope/edXMLBody/edXMLManifest/Reference[1]/ContentId"),
]


@pytest.mark.parametrize("xpath,path", EDOC_REQUIRED, ids=[p for _, p in EDOC_REQUIRED])
def test_every_required_element_of_a_document(xpath, path):
    err = code_of(remove(DOC, xpath))
    assert (err.code, err.path) == ("EDXML_MISSING_ELEMENT", path)


STATUS_REQUIRED = [
    ("//e:MessageHeader/e:From", f"{H}/From"),
    ("//e:From/e:OrganId", f"{H}/From/OrganId"),
    ("//e:MessageHeader/e:ResponseFor", f"{H}/ResponseFor"),
    ("//e:ResponseFor/e:DocumentId", f"{H}/ResponseFor/DocumentId"),
    ("//e:MessageHeader/e:Description", f"{H}/Description"),
    ("//e:MessageHeader/e:Timestamp", f"{H}/Timestamp"),
]


@pytest.mark.parametrize("xpath,path", STATUS_REQUIRED, ids=[p for _, p in STATUS_REQUIRED])
def test_every_required_element_of_a_status(xpath, path):
    err = code_of(remove(STATUS, xpath))
    assert (err.code, err.path) == ("EDXML_MISSING_ELEMENT", path)


def test_duplicated_single_element():
    root = tree(DOC)
    subject = root.find(".//e:Subject", NS)
    subject.addnext(subject.__copy__())
    err = code_of(to_bytes(root))
    assert (err.code, err.path) == ("EDXML_DUPLICATE_ELEMENT", f"{H}/Subject[2]")


def test_fixtures_all_parse():
    for path in FIXTURES.glob("*.edxml"):
        parse(path.read_bytes())


def test_json_signature_base64_is_strict():
    """``from_json`` (``edxml build``) decodes the signature with the same strict rule."""
    import binascii

    from gateway.edxml import from_json, to_json

    meta = to_json(dataclasses.replace(new_document(), attachments=(), signature=b"<Sig/>"))
    assert from_json(meta).signature == b"<Sig/>"
    meta["signature"] = "**" + meta["signature"]
    with pytest.raises(binascii.Error):
        from_json(meta)
