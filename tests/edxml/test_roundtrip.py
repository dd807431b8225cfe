from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

import pytest

from gateway.edxml import (
    VIETNAM_TZ,
    Attachment,
    EdocMessage,
    StatusCode,
    StatusMessage,
    append_trace_header,
    build,
    parse,
    parse_edoc,
    parse_status,
    to_json,
)
from gateway.edxml.errors import EdxmlStructureError

from .scenarios import FIXTURES, STATUS_TEXTS, new_document, scenarios

SCENARIOS = scenarios()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_round_trip_every_scenario(name):
    model = SCENARIOS[name]
    assert parse(build(model)) == model


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_fixture_files_are_the_canonical_build(name):
    data = (FIXTURES / f"{name}.edxml").read_bytes()
    assert data == build(SCENARIOS[name])
    assert parse(data) == SCENARIOS[name]


def test_build_is_deterministic_and_canonical_order():
    data = build(new_document())
    assert data == build(new_document())
    text = data.decode("utf-8")
    order = ["<edXML:From>", "<edXML:To>", "<edXML:DocumentId>", "<edXML:Code>",
             "<edXML:PromulgationInfo>", "<edXML:DocumentType>", "<edXML:Subject>",
             "<edXML:Content>", "<edXML:SignerInfo>", "<edXML:DueDate>", "<edXML:OtherInfo>",
             "<edXML:SteeringType>", "<edXML:ToPlaces>"]
    positions = [text.index(tag) for tag in order]
    assert positions == sorted(positions)
    assert "<edXML:PromulgationDate>2024/03/15</edXML:PromulgationDate>" in text
    assert "<edXML:Timestamp>2024/03/15 09:30:00</edXML:Timestamp>" in text


def test_attachments_are_zipped_base64_and_unpacked():
    doc = new_document()
    data = build(doc)
    assert b"<edXML:ContentTransferEncoded>UEsDB" in data  # base64 of "PK\x03\x04"
    parsed = parse_edoc(data)
    for got, want in zip(parsed.attachments, doc.attachments, strict=True):
        assert got.data == want.data and got.data.startswith(b"%PDF-1.7")
        assert got.sha256 == want.sha256 and got.size == len(want.data)


def test_round_trip_edge_values():
    doc = dataclasses.replace(
        new_document(), content=None, due_date=None, other_info=None, steering_type=None,
        to_places=(), bussiness=None, signature=None, subject="A < B & C > D \"q\" 'a'",
        attachments=(Attachment("cid:x", "empty.txt", "text/plain", b"", None),
                     Attachment("y", "zip.zip", "application/zip", build(new_document())[:0]
                                + b"PK\x03\x04 not really a zip", "")))
    parsed = parse(build(doc))
    assert parsed == doc
    assert parsed.attachments[0].content_id == "x"


def test_signature_is_kept_raw_and_round_trips():
    sig = (b'<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignatureValue>'
           b"QUJD</ds:SignatureValue></ds:Signature>")
    doc = dataclasses.replace(new_document(), signature=sig)
    parsed = parse(build(doc))
    assert parsed.signature == sig
    assert parsed == doc


def test_timestamps_are_vietnam_time():
    status = StatusMessage(SCENARIOS["status_03"].from_organ, SCENARIOS["status_03"].response_for,
                           "03", "", datetime(2024, 3, 15, 3, 0, 0, 123456, tzinfo=UTC))
    data = build(status)
    assert b"<edXML:Timestamp>2024/03/15 10:00:00</edXML:Timestamp>" in data
    parsed = parse_status(data)
    assert parsed.timestamp == datetime(2024, 3, 15, 10, 0, 0, tzinfo=VIETNAM_TZ)
    assert parsed == status


@pytest.mark.parametrize("code", sorted(STATUS_TEXTS))
def test_every_status_code(code):
    parsed = parse_status((FIXTURES / f"status_{code}.edxml").read_bytes())
    assert parsed.status_code == code
    assert isinstance(parsed.status_code, StatusCode)
    assert parsed.status_code.meaning_vi and parsed.status_code.meaning_en


def test_unknown_status_code_is_kept_as_string():
    model = dataclasses.replace(SCENARIOS["status_03"], status_code="09")
    parsed = parse(build(model))
    assert parsed.status_code == "09" and not isinstance(parsed.status_code, StatusCode)
    assert to_json(parsed)["status_code"] == "09"


def test_parse_edoc_and_parse_status_check_the_kind():
    with pytest.raises(EdxmlStructureError) as exc:
        parse_edoc(build(SCENARIOS["status_01"]))
    assert exc.value.code == "EDXML_WRONG_MESSAGE_TYPE"
    with pytest.raises(EdxmlStructureError):
        parse_status(build(new_document()))


def test_append_trace_header_keeps_payload_bytes():
    data = build(new_document())
    when = datetime(2024, 3, 15, 9, 31, 2, tzinfo=VIETNAM_TZ)
    out = append_trace_header(data, "000.00.00.H29", when)
    start = data.index(b"<edXML:ContentTransferEncoded>")
    payload = data[start:data.index(b"</edXML:ContentTransferEncoded>", start)]
    assert payload in out
    parsed = parse_edoc(out)
    original = parse_edoc(data)
    assert parsed.trace_headers == (*original.trace_headers,
                                    parsed.trace_headers[-1])
    assert parsed.trace_headers[-1].organ_id == "000.00.00.H29"
    assert parsed.trace_headers[-1].timestamp == when
    assert parsed.attachments == original.attachments
    assert dataclasses.replace(parsed, trace_headers=original.trace_headers) == original


def test_append_trace_header_creates_the_list_on_a_status():
    data = build(SCENARIOS["status_01"])
    out = append_trace_header(data, "vxp.saas.03", datetime(2024, 3, 15, 11, 0, 0))
    parsed = parse_status(append_trace_header(out, "000.00.00.G22",
                                              datetime(2024, 3, 15, 11, 0, 1)))
    assert [t.organ_id for t in parsed.trace_headers] == ["vxp.saas.03", "000.00.00.G22"]


def test_to_json_summarises_attachments():
    doc = parse_edoc(build(new_document()))
    summary = to_json(doc)
    assert summary["message_type"] == "edoc"
    assert summary["promulgation_info"]["promulgation_date"] == "2024-03-15"
    att = summary["attachments"][0]
    assert set(att) == {"content_id", "name", "content_type", "description", "size", "sha256"}
    assert att["sha256"] == doc.attachments[0].sha256
    assert summary["bussiness"]["bussiness_doc_type"] == 0
    status = to_json(SCENARIOS["status_02"])
    assert status["status_code"] == "02" and status["status_meaning_vi"] == "Từ chối tiếp nhận"


def test_models_are_frozen():
    doc = new_document()
    with pytest.raises(dataclasses.FrozenInstanceError):
        doc.subject = "x"  # type: ignore[misc]
    assert isinstance(doc, EdocMessage)
    assert doc.promulgation_info.promulgation_date == date(2024, 3, 15)
