"""Typed business messages in the adapter SDK (issue 13): parsing ``kind``/``business``, the
webhook's ``X-Edoc-Kind``, the drop folder's ``business-<kind>.json`` and the eOffice
simulator acting on the originals and answering 15/16."""

from __future__ import annotations

import json
import uuid

import pytest

from adapters.contract import Delivery
from adapters.eoffice_sim import EOfficeSimulator
from adapters.errors import MessageFormatError
from adapters.folder import MANIFEST, FolderAdapter, safe_file_names
from adapters.message import parse_delivery
from adapters.webhook import WebhookAdapter
from tests.adapters.helpers import delivery_message
from tests.adapters.test_eoffice_sim import SECRET, FakeGateway
from tests.conftest import wait_for


def _typed(kind: str, original: str | None = None, **extra) -> dict:
    original = original or str(uuid.uuid4())
    business = {"kind": kind, "reason": "Ban hành nhầm",
                "originals": [{"document_id": original, "edxml_document_id": "x,1",
                               "previous_state": "DELIVERED", "state": "REVOKED"}]}
    return delivery_message(files={"tb.pdf": b"%PDF-1 tb"}, inline=True, kind=kind,
                            business=business, **extra)


def _parse(msg: dict):
    return parse_delivery(json.dumps(msg).encode())


def test_a_document_message_parses_as_before():
    parsed = _parse(delivery_message())
    assert parsed.kind == "document" and parsed.business is None
    assert parsed.original_ids == ()


@pytest.mark.parametrize("kind", ["revoke", "update", "replace", "take_back"])
def test_typed_messages_name_their_originals(kind):
    original = str(uuid.uuid4())
    parsed = _parse(_typed(kind, original))
    assert parsed.kind == kind and parsed.original_ids == (original,)


@pytest.mark.parametrize("change, code", [
    ({"kind": "delete_everything"}, "MESSAGE_KIND_UNKNOWN"),
    ({"kind": 3}, "MESSAGE_KIND_UNKNOWN"),
    ({"business": None}, "MESSAGE_INVALID"),
    ({"business": {"kind": "revoke"}}, "MESSAGE_INVALID"),
    ({"business": {"originals": [{"document_id": "not-a-uuid"}]}}, "MESSAGE_INVALID"),
    ({"business": {"originals": ["x"]}}, "MESSAGE_INVALID"),
])
def test_a_malformed_or_unknown_kind_is_never_a_document(change, code):
    """A kind the adapter does not know, or a business message without valid originals, is
    refused (dead letter) — never delivered as if it were a new document."""
    msg = {**_typed("revoke"), **change}
    with pytest.raises(MessageFormatError) as err:
        _parse(msg)
    assert err.value.code == code


async def test_folder_writes_a_file_naming_the_kind(tmp_path):
    msg = _typed("take_back")
    delivery = Delivery.of(_parse(msg))
    await FolderAdapter(tmp_path).deliver(delivery)
    folder = tmp_path / msg["agency"] / msg["message_id"]
    assert sorted(p.name for p in folder.iterdir()) == ["business-take_back.json", MANIFEST,
                                                         "tb.pdf"]
    block = json.loads((folder / "business-take_back.json").read_text())
    assert block["kind"] == "take_back" and block["document_id"] == msg["document_id"]
    assert json.loads((folder / MANIFEST).read_text())["kind"] == "take_back"
    # an attachment cannot take the business file's name
    assert safe_file_names(["business-revoke.json"],
                           reserved=(MANIFEST, "business-revoke.json")) == [
        "business-revoke (2).json"]


async def test_simulator_cancels_a_revoked_document_and_answers_15():
    async with FakeGateway() as gw, EOfficeSimulator(
            SECRET, gateway_url=gw.url, gateway_token="t", answer="03") as sim:
        adapter = WebhookAdapter(sim.url, SECRET)
        try:
            original = str(uuid.uuid4())
            msg = _typed("revoke", original)
            await adapter.deliver(Delivery.of(_parse(msg)))
            await wait_for(lambda: gw.reports, timeout=10)
        finally:
            await adapter.close()
    assert original in sim.revoked
    assert [d.kind for d in sim.business] == ["revoke"]
    doc, _auth, body = gw.reports[0]
    assert doc == msg["document_id"] and body["status"] == "15"


async def test_simulator_refuses_a_take_back_with_a_reason():
    async with FakeGateway() as gw, EOfficeSimulator(
            SECRET, gateway_url=gw.url, gateway_token="t", business_answer="16") as sim:
        adapter = WebhookAdapter(sim.url, SECRET)
        try:
            await adapter.deliver(Delivery.of(_parse(_typed("take_back"))))
            await wait_for(lambda: gw.reports, timeout=10)
        finally:
            await adapter.close()
    assert sim.taken_back == set()
    _doc, _auth, body = gw.reports[0]
    assert body["status"] == "16" and body["description"]
