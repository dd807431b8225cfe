from __future__ import annotations

import pytest

from gateway.edxml import EdxmlSchemaError, build, validate_xsd

from .helpers import remove, set_text
from .scenarios import FIXTURES, new_document, status

DOC = build(new_document())
STATUS = build(status("02", "Sai thẩm quyền"))


@pytest.mark.parametrize("path", sorted(p.name for p in FIXTURES.glob("*.edxml")))
def test_every_fixture_validates(path):
    kind = validate_xsd((FIXTURES / path).read_bytes())
    assert kind == ("status" if path.startswith("status") else "edoc")


@pytest.mark.parametrize("xpath", [
    "//e:MessageHeader/e:From", "//e:From/e:OrganId", "//e:MessageHeader/e:DocumentId",
    "//e:Code/e:CodeNumber", "//e:PromulgationInfo/e:PromulgationDate",
    "//e:DocumentType/e:TypeName", "//e:MessageHeader/e:Subject", "//e:SignerInfo/e:FullName",
    "//e:To[1]/e:OrganId", "//e:TraceHeader/e:Timestamp",
    "//e:Attachment[1]/e:ContentTransferEncoded",
])
def test_required_elements_of_a_document(xpath):
    with pytest.raises(EdxmlSchemaError) as exc:
        validate_xsd(remove(DOC, xpath))
    assert exc.value.code == "EDXML_SCHEMA_INVALID"


@pytest.mark.parametrize("xpath", [
    "//e:MessageHeader/e:StatusCode", "//e:ResponseFor/e:DocumentId",
    "//e:MessageHeader/e:Timestamp", "//e:MessageHeader/e:Description",
])
def test_required_elements_of_a_status(xpath):
    with pytest.raises(EdxmlSchemaError):
        validate_xsd(remove(STATUS, xpath))


@pytest.mark.parametrize("doc,xpath,text", [
    (DOC, "//e:PromulgationInfo/e:PromulgationDate", "15 March 2024"),
    (DOC, "//e:DocumentType/e:Type", "one"),
    (DOC, "//e:Bussiness/e:BussinessDocType", "4"),
    (STATUS, "//e:StatusCode", "2"),
    (DOC, "//e:Attachment[2]/e:ContentId", "6c2f1a4e-1b0e-4a43-9d55-1c5c0e2f8a01"),
])
def test_bad_values(doc, xpath, text):
    with pytest.raises(EdxmlSchemaError) as exc:
        validate_xsd(set_text(doc, xpath, text))
    assert exc.value.path and exc.value.path.startswith("/edXML")


@pytest.mark.parametrize("xpath,text", [
    ("//e:PromulgationInfo/e:PromulgationDate", "15/03/2024"),
    ("//e:PromulgationInfo/e:PromulgationDate", "2024-03-15"),
    ("//e:DueDate", ""),
])
def test_accepted_variants(xpath, text):
    assert validate_xsd(set_text(DOC, xpath, text)) == "edoc"


def test_empty_response_for_and_missing_signature():
    assert validate_xsd(remove(DOC, "//e:TraceHeaderList")) == "edoc"
