"""The pure rules of received business flows (:mod:`gateway.business.flow_rules`; QCVN
102:2016 ``TraceHeaderList/Bussiness``, status 13; Decree 30/2020 Art. 18)."""

from __future__ import annotations

from datetime import date

import pytest

from gateway.business.flow_rules import (
    FlowError,
    FlowKind,
    flow_request,
    match_originals,
    next_state,
    take_back_matches,
)
from gateway.edxml import (
    Bussiness,
    BussinessDocType,
    BussinessDocumentInfo,
    Receiver,
    ReplacementInfo,
)

A, B = "000.00.00.H01", "000.00.00.H02"


def test_a_new_document_is_no_flow():
    assert flow_request(None) is None
    assert flow_request(Bussiness(BussinessDocType.NEW)) is None


def test_revoke_and_update_name_the_original_in_bussiness_documentid():
    req = flow_request(Bussiness(BussinessDocType.REVOKE, "A,2026/01/01,1/X", "nhầm"))
    assert (req.kind, req.originals, req.reason) == (FlowKind.REVOKE, ("A,2026/01/01,1/X",),
                                                     "nhầm")
    upd = flow_request(Bussiness(BussinessDocType.UPDATE, "d", bussiness_document_info=(
        BussinessDocumentInfo(True, False, (Receiver(A, 1),)))))
    assert upd.business_json()["receivers"] == [{"organ_id": A, "receiver_type": 1}]
    assert upd.document_info is True and upd.document_receiver is False


def test_replace_names_every_replaced_document_once():
    req = flow_request(Bussiness(BussinessDocType.REPLACE, "d1", replacement_info_list=(
        ReplacementInfo(("d1", "d2")), ReplacementInfo(("d3",)))))
    assert req.originals == ("d1", "d2", "d3")


@pytest.mark.parametrize("bussiness", [
    Bussiness(BussinessDocType.REVOKE, None),                      # no original named
    Bussiness(BussinessDocType.UPDATE, "   "),
    Bussiness(BussinessDocType.REVOKE, "x" * 256),                 # over the identifier limit
    Bussiness(BussinessDocType.REVOKE, "a\x00b"),                  # a control character
    Bussiness(BussinessDocType.REPLACE, None, replacement_info_list=()),
    Bussiness(BussinessDocType.REPLACE, None, replacement_info_list=(
        ReplacementInfo(tuple(f"d{i}" for i in range(51))),)),     # too many
    Bussiness(BussinessDocType.REPLACE, None, replacement_info_list=(
        ReplacementInfo(("A" * 10_240,)),)),
])
def test_a_flow_without_a_usable_original_is_business_invalid(bussiness):
    with pytest.raises(FlowError) as err:
        flow_request(bussiness)
    assert err.value.code == "BUSINESS_INVALID" and err.value.reason


def test_only_the_senders_own_document_is_an_original():
    """Agency B can never revoke agency A's document: the same DocumentId from another
    sender is ``foreign``, never found."""
    rows = [(A, "d1", 1), (B, "d2", 2), (A, "d3", 3), (A, "d3", 4)]
    m = match_originals(["d1", "d2", "d9"], A, rows)
    assert m.found == {"d1": 1} and m.foreign == ("d2",) and m.unknown == ("d9",)
    assert m.problem() is None
    assert match_originals(["d3"], A, rows).found == {"d3": 4}  # the latest
    assert match_originals(["d1"], B, rows).problem() == "BUSINESS_NOT_ORIGINAL_SENDER"
    assert match_originals(["d9"], A, rows).problem() == "BUSINESS_ORIGINAL_UNKNOWN"


@pytest.mark.parametrize("kind, current, after", [
    (FlowKind.REVOKE, "DELIVERED", "REVOKED"),
    (FlowKind.UPDATE, "ACCEPTED", "UPDATED"),
    (FlowKind.REPLACE, "PROCESSING", "REPLACED"),
    (FlowKind.UPDATE, "REVOKED", "REVOKED"),       # final states stay
    (FlowKind.REVOKE, "TAKEN_BACK", "TAKEN_BACK"),
    (FlowKind.REPLACE, "REPLACED", "REPLACED"),
])
def test_the_originals_state_after_a_flow(kind, current, after):
    assert next_state(kind, current) == after


def test_a_take_back_must_agree_with_the_documents_code_and_date():
    doc = {"code_number": "12", "code_notation": "UBND-VP",
           "promulgation_date": date(2026, 1, 2)}
    assert take_back_matches(doc, "12/UBND-VP", date(2026, 1, 2))
    assert take_back_matches(doc, " 12 / ubnd-vp ", None)
    assert take_back_matches(doc, None, None)
    assert not take_back_matches(doc, "13/UBND-VP", None)
    assert not take_back_matches(doc, "12/UBND-VP", date(2026, 1, 3))
