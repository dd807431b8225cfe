"""Statuses back in the adapter SDK (issue 13, "Tracking"): a receiver's business status about
a document the agency sent arrives as ``kind: status`` (``schemas/messages/
delivery.schema.json``, block ``status``); the parser requires the block, the drop folder
writes ``status.json``, the webhook says ``X-Edoc-Kind: status`` and the eOffice simulator
records it once (a redelivery of the same message is a duplicate, never a second status)."""

from __future__ import annotations

import json
import uuid

import pytest

from adapters.contract import Delivery
from adapters.eoffice_sim import EOfficeSimulator
from adapters.errors import MessageFormatError
from adapters.folder import MANIFEST, STATUS_FILE, FolderAdapter
from adapters.message import parse_delivery
from adapters.webhook import WebhookAdapter
from tests.adapters.helpers import delivery_message
from tests.adapters.test_eoffice_sim import SECRET

SCHEMA = "schemas/messages/delivery.schema.json"


def _status(**status) -> dict:
    block = {"status_event_id": 7, "send_id": str(uuid.uuid4()), "receiver": "000.00.01.H99",
             "axis_doc_id": "S-000001", "code": "03", "meaning_vi": "Tiếp nhận",
             "description": "Đã vào sổ", "staff": {"Staff": "Trần Thị B"},
             "timestamp": "2024-03-02T08:30:00+00:00",
             "received_at": "2024-03-02T08:31:00+00:00", **status}
    return delivery_message(kind="status", status=block)


def _parse(msg: dict):
    return parse_delivery(json.dumps(msg).encode())


def test_a_status_message_parses_with_its_block():
    parsed = _parse(_status())
    assert parsed.kind == "status" and parsed.business is None
    assert parsed.status["code"] == "03" and parsed.original_ids == ()


@pytest.mark.parametrize("change", [
    {"status": None}, {"status": "03"}, {"status": {"code": "03"}},
    {"status": {"receiver": "000.00.01.H99", "code": 3}},
])
def test_a_status_message_without_a_valid_block_is_refused(change):
    """kind status needs an object ``status`` with string ``receiver`` and ``code``."""
    msg = {**_status(), **change}
    if change.get("status") is None:
        msg.pop("status")
    with pytest.raises(MessageFormatError) as err:
        _parse(msg)
    assert err.value.code == "MESSAGE_INVALID"


def test_the_schema_knows_the_status_kind():
    schema = json.loads(open(SCHEMA, encoding="utf-8").read())
    assert "status" in schema["properties"]["kind"]["enum"]
    assert schema["properties"]["status"]["required"] == ["receiver", "code", "timestamp"]
    assert schema["allOf"][0]["then"] == {"required": ["status"]}


async def test_folder_writes_status_json(tmp_path):
    msg = _status()
    await FolderAdapter(tmp_path).deliver(Delivery.of(_parse(msg)))
    folder = tmp_path / msg["agency"] / msg["message_id"]
    assert sorted(p.name for p in folder.iterdir()) == [MANIFEST, STATUS_FILE]
    block = json.loads((folder / STATUS_FILE).read_text(encoding="utf-8"))
    assert block["kind"] == "status" and block["document_id"] == msg["document_id"]
    assert block["status"]["code"] == "03" and block["edxml_document_id"]
    assert json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["kind"] == "status"


async def test_the_simulator_records_a_status_once_and_never_answers_it():
    async with EOfficeSimulator(SECRET) as sim:
        adapter = WebhookAdapter(sim.url, SECRET)
        try:
            msg = _status(code="99", description="mã lạ")
            delivery = Delivery.of(_parse(msg))
            await adapter.deliver(delivery)
            await adapter.deliver(delivery)  # a redelivery: 409, the same status
        finally:
            await adapter.close()
    assert sim.duplicates == 1 and sim.status_reports == []
    [got] = sim.statuses_for(msg["document_id"])
    assert (got.receiver, got.code, got.description) == ("000.00.01.H99", "99", "mã lạ")
    assert got.staff == {"Staff": "Trần Thị B"}
