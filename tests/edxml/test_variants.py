from __future__ import annotations

from datetime import date, datetime

import pytest

from gateway.edxml import VIETNAM_TZ, build, parse_date, parse_edoc, parse_timestamp

from .helpers import NS, remove, set_text, to_bytes, tree
from .scenarios import FIXTURES, new_document

VARIANT = (FIXTURES / "variant_other_producer.edxml").read_bytes()


def test_other_producer_variant_is_accepted():
    doc = parse_edoc(VARIANT)
    assert doc.from_organ.organ_id == "000.00.11.H29"
    assert [o.organ_id for o in doc.to_organs] == ["000.00.12.H29", "000.00.13.H29"]
    assert doc.code.code_number == "88" and doc.code.code_notation == "SNV-VP"
    assert doc.promulgation_info.promulgation_date == date(2024, 3, 15)
    assert doc.subject == "V/v cử cán bộ tham dự tập huấn"
    assert doc.signer_info.competence == ""
    assert doc.due_date is None
    assert doc.response_for[0].is_empty and doc.replies_to == ()
    assert doc.other_info.direction is True and doc.other_info.priority == 2
    assert [t.organ_id for t in doc.trace_headers] == [None, None]
    assert doc.trace_headers[0].timestamp == datetime(2024, 3, 15, 16, 2, 11, tzinfo=VIETNAM_TZ)
    assert doc.signature.startswith(b'<Signature xmlns="http://www.w3.org/2000/09/xmldsig#">')
    main, annex = doc.attachments
    assert main.content_id == "0f8e6d1c-2b3a-4c5d-8e9f-a0b1c2d3e4f5"  # from xlink:href="cid:…"
    assert main.name == "GiayMoi_88.pdf" and main.content_type == "application/pdf"
    assert main.data.startswith(b"%PDF-1.7") and main.description == "Giấy mời"
    assert annex.content_id == "raw-annex" and annex.data.startswith(b"%PDF-1.7")  # not zipped


def test_variant_rebuilds_canonically():
    doc = parse_edoc(VARIANT)
    assert parse_edoc(build(doc)) == doc


def test_missing_signature_trace_list_and_body_are_tolerated():
    data = build(new_document())
    data = remove(data, "//e:TraceHeaderList")
    data = remove(data, "//e:edXMLBody")
    doc = parse_edoc(data)  # Attachments without a manifest still parse
    assert doc.trace_headers == () and doc.signature is None and len(doc.attachments) == 2


def test_unqualified_elements_are_accepted():
    root = tree(build(new_document()))
    subject = root.find(".//e:Subject", NS)
    subject.tag = "Subject"
    assert parse_edoc(to_bytes(root)).subject == new_document().subject


@pytest.mark.parametrize("text", ["2024/03/05", "05/03/2024", "2024-03-05", "5/3/2024",
                                  "2024/03/05 00:00:00", "2024-03-05T00:00:00+07:00"])
def test_date_formats(text):
    assert parse_date(text) == date(2024, 3, 5)
    data = set_text(build(new_document()), "//e:PromulgationInfo/e:PromulgationDate", text)
    assert parse_edoc(data).promulgation_info.promulgation_date == date(2024, 3, 5)


@pytest.mark.parametrize("text,expected", [
    ("2024/03/05 14:07:09", datetime(2024, 3, 5, 14, 7, 9, tzinfo=VIETNAM_TZ)),
    ("05/03/2024 14:07:09", datetime(2024, 3, 5, 14, 7, 9, tzinfo=VIETNAM_TZ)),
    ("2024-03-05T07:07:09Z", datetime(2024, 3, 5, 14, 7, 9, tzinfo=VIETNAM_TZ)),
    ("2024-03-05 14:07", datetime(2024, 3, 5, 14, 7, 0, tzinfo=VIETNAM_TZ)),
])
def test_timestamp_formats(text, expected):
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize("text", ["2024/13/01", "31/02/2024", "yesterday", "2024/03/05 25:00:00"])
def test_bad_dates_raise_value_error(text):
    with pytest.raises(ValueError):
        parse_timestamp(text)
