"""Business flows RECEIVED from another agency (issue 13; QCVN 102:2016 ``Bussiness`` and status
13/15/16; Decree 30/2020 Art. 18): over the axis simulator, the real database and broker.

Each flow names its original; the gateway links it to the original of the SAME sender, moves the
original's state and delivers a typed message (``kind``) naming it — never a new, unrelated
document (:mod:`gateway.business.flow_rules`, :mod:`gateway.inbound.business`).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from gateway.api.auth import create_client
from gateway.demo.exchange import organ
from gateway.demo.samples import edoc, package, signed_pdf
from gateway.edxml import (
    Attachment,
    Bussiness,
    BussinessDocType,
    BussinessDocumentInfo,
    Organ,
    Receiver,
    ReplacementInfo,
    ResponseFor,
    StatusMessage,
    build,
)
from gateway.ops.replay import replay_delivery
from tests.conftest import wait_for
from tests.flows.conftest import CITY, D1, D2, OTHER, SENDER, purge_agency_queues

pytestmark = pytest.mark.usefixtures("drained_agency_queues", "empty_agency_queues")
STRANGER = organ(OTHER)


@pytest.fixture
async def empty_agency_queues(flow_gateway, amqp):
    """Start with the run's agency queues empty: tests of other modules may leave messages."""
    await purge_agency_queues(amqp, flow_gateway.topology, (D1.organ_id, D2.organ_id))


async def _messages(gw, amqp, agency: str) -> list[dict]:
    channel = await amqp.channel()
    queue = await channel.get_queue(gw.topology.agency_queue(agency), ensure=False)
    out = []
    while (msg := await queue.get(no_ack=True, fail=False)) is not None:
        out.append(json.loads(msg.body))
    await channel.close()
    return out


async def _published(db) -> bool:
    return await db.fetchval("SELECT count(*) FROM outbox WHERE destination = 'amqp'") == 0


async def _row(db, edxml_id: str, kind: int = 0):
    return await db.fetchrow(
        "SELECT * FROM documents WHERE edxml_document_id = $1 AND bussiness_doc_type = $2"
        " ORDER BY created_at DESC LIMIT 1", edxml_id, kind)


async def _take_in(axis, db, msg, *, kind: int = 0, state: str | None = None):
    """Post ``msg`` at the axis as its sender; wait until the gateway stored it."""
    axis.post_document(package(msg))

    async def stored():
        row = await _row(db, msg.document_id, kind)
        return row if row is not None and (state is None or row["state"] == state) else None

    return await wait_for(stored, timeout=20)


def _statuses(axis, organ_id: str, code: str, n: int = 1):
    got = [s for s in axis.statuses_for(organ_id) if s.status_code == code]
    return got if len(got) >= n else None


async def _events(db, doc_id) -> list[str]:
    return [r["event"] for r in await db.fetch(
        "SELECT event FROM document_events WHERE document_id = $1 ORDER BY id", doc_id)]


async def _eoffice(client, db, agency: str) -> dict:
    token = (await create_client(db, name=f"eo-{agency}", role="eoffice",
                                 agencies=[agency])).token
    return {"Authorization": f"Bearer {token}"}


async def _original(axis, db, pki, number: int, receivers=(D1, D2)):
    msg = edoc(SENDER, list(receivers), await signed_pdf(pki, f"Cong van goc {number}"),
               number=number)
    row = await _take_in(axis, db, msg, state="ROUTED")
    return msg, row


async def test_revoke_links_the_original_and_is_a_typed_message(flow_gateway, aiohttp_client,
                                                                db, pki, axis, amqp):
    """BussinessDocType 1 (thu hồi): the original of the same sender becomes REVOKED, each
    receiver's eOffice gets a ``revoke`` message naming it; the eOffice's 15 (cancelled, Decree
    30 Art. 18.4b) goes back to the sender."""
    gw = flow_gateway
    original, orig = await _original(axis, db, pki, 1101)
    revoke = replace(original, bussiness=Bussiness(BussinessDocType.REVOKE,
                                                   original.document_id, "Ban hành nhầm"),
                     attachments=(Attachment("tb", "thu-hoi.pdf", "application/pdf",
                                             await signed_pdf(pki, "Thu hoi"), "Thu hồi"),))
    action = await _take_in(axis, db, revoke, kind=1, state="ROUTED")
    assert action["original_id"] == orig["id"]
    assert await db.fetchval("SELECT state FROM documents WHERE id = $1", orig["id"]) == "REVOKED"
    assert "business.revoke" in await _events(db, orig["id"])
    assert "business.linked" in await _events(db, action["id"])
    kinds = await db.fetch("SELECT document_id, agency_code, kind FROM deliveries"
                           " ORDER BY kind, agency_code")
    assert [(r["document_id"], r["kind"]) for r in kinds] == [
        (orig["id"], "document"), (orig["id"], "document"),
        (action["id"], "revoke"), (action["id"], "revoke")]
    await wait_for(lambda: _published(db), timeout=15)
    got = await _messages(gw, amqp, D1.organ_id)
    assert [(m.get("kind"), m["document_id"]) for m in got] == [
        (None, str(orig["id"])), ("revoke", str(action["id"]))], got  # a document's unchanged
    typed = got[1]
    assert typed["schema"] == "edoc.delivery/1" and typed["bussiness_doc_type"] == 1
    assert typed["document_id"] == str(action["id"])
    assert typed["business"]["originals"][0]["document_id"] == str(orig["id"])
    assert typed["business"]["originals"][0]["state"] == "REVOKED"
    assert typed["business"]["reason"] == "Ban hành nhầm"
    assert [a["name"] for a in typed["attachments"]] == ["thu-hoi.pdf"]

    client = await aiohttp_client(gw.web_app())
    auth = await _eoffice(client, db, D1.organ_id)
    resp = await client.post(f"/v1/documents/{action['id']}/status", headers=auth,
                             json={"agency": D1.organ_id, "status": "15",
                                   "description": "Đã hủy văn bản bị thu hồi"})
    assert resp.status == 202, await resp.text()
    agreed = await wait_for(lambda: _statuses(axis, CITY.organ_id, "15"), timeout=15)
    assert agreed[0].from_organ == D1.organ_id
    # the original's eOffice view says REVOKED
    detail = await (await client.get(f"/v1/documents/{orig['id']}", headers=auth)).json()
    assert detail["state"] == "REVOKED"


async def test_update_moves_the_original_and_carries_receivers_and_files(
        flow_gateway, aiohttp_client, db, pki, axis, amqp):
    """BussinessDocType 2 (cập nhật): receivers (``ReceiverList``) and files
    (``DocumentInfo`` = 1) travel in an ``update`` message; the original is UPDATED until its
    next business status moves it on."""
    gw = flow_gateway
    original, orig = await _original(axis, db, pki, 1201)
    new_pdf = await signed_pdf(pki, "Cong van cap nhat")
    update = replace(original, bussiness=Bussiness(
        BussinessDocType.UPDATE, original.document_id, "Bổ sung tệp, bớt nơi nhận",
        bussiness_document_info=BussinessDocumentInfo(True, True, (Receiver(D1.organ_id, 1),))),
        attachments=(Attachment("cv-new", "cap-nhat.pdf", "application/pdf", new_pdf, "Mới"),))
    action = await _take_in(axis, db, update, kind=2, state="ROUTED")
    assert await db.fetchval("SELECT state FROM documents WHERE id = $1", orig["id"]) == "UPDATED"
    assert action["original_id"] == orig["id"]
    await wait_for(lambda: _published(db), timeout=15)
    typed = [m for m in await _messages(gw, amqp, D2.organ_id) if m.get("kind")]
    assert len(typed) == 1 and typed[0]["kind"] == "update"
    block = typed[0]["business"]
    assert block["document_info"] is True and block["document_receiver"] is True
    assert block["receivers"] == [{"organ_id": D1.organ_id, "receiver_type": 1}]
    assert [a["sha256"] for a in typed[0]["attachments"]] == [
        __import__("hashlib").sha256(new_pdf).hexdigest()]
    assert await db.fetchval("SELECT count(*) FROM documents WHERE bussiness_doc_type = 0") == 1
    client = await aiohttp_client(gw.web_app())
    auth = await _eoffice(client, db, D1.organ_id)
    resp = await client.post(f"/v1/documents/{orig['id']}/status", headers=auth,
                             json={"agency": D1.organ_id, "status": "03"})
    assert resp.status == 202, await resp.text()
    assert await db.fetchval("SELECT state FROM documents WHERE id = $1",
                             orig["id"]) == "ACCEPTED"


async def test_replace_names_the_replaced_documents(flow_gateway, db, pki, axis, amqp):
    """BussinessDocType 3 (thay thế): ``ReplacementInfoList`` names the replaced DocumentIds;
    each known one becomes REPLACED and the replacement travels as a ``replace`` message with
    its files (unknown ones are listed, not invented)."""
    gw = flow_gateway
    original, orig = await _original(axis, db, pki, 1301, receivers=(D1,))
    missing = f"{SENDER.organ_id},2020/01/01,1/KHONG-CO"
    replacement = replace(
        edoc(SENDER, [D1], await signed_pdf(pki, "Van ban thay the"), number=1302),
        bussiness=Bussiness(BussinessDocType.REPLACE, None, "Thay thế văn bản sai",
                            replacement_info_list=(ReplacementInfo(
                                (original.document_id, missing), (D1.organ_id,)),)))
    action = await _take_in(axis, db, replacement, kind=3, state="ROUTED")
    assert await db.fetchval("SELECT state FROM documents WHERE id = $1",
                             orig["id"]) == "REPLACED"
    await wait_for(lambda: _published(db), timeout=15)
    typed = [m for m in await _messages(gw, amqp, D1.organ_id) if m.get("kind")]
    assert [m["kind"] for m in typed] == ["replace"]
    assert typed[0]["document_id"] == str(action["id"])
    assert [o["document_id"] for o in typed[0]["business"]["originals"]] == [str(orig["id"])]
    assert typed[0]["business"]["unknown"] == [missing]
    assert len(typed[0]["attachments"]) == 1


async def test_revoke_from_another_agency_is_refused(flow_gateway, db, pki, axis):
    """Only the original's sender may revoke it: agency B naming agency A's document gets a 02
    with ``BUSINESS_NOT_ORIGINAL_SENDER``; the original stays as it was."""
    original, orig = await _original(axis, db, pki, 1401, receivers=(D1,))
    forged = replace(edoc(STRANGER, [D1], await signed_pdf(pki, "Thu hoi gia"), number=1401),
                     bussiness=Bussiness(BussinessDocType.REVOKE, original.document_id,
                                         "Thu hồi"))
    row = await _take_in(axis, db, forged, kind=1, state="REJECTED")
    assert row["reject_code"] == "BUSINESS_NOT_ORIGINAL_SENDER"
    assert row["original_id"] is None
    assert await db.fetchval("SELECT state FROM documents WHERE id = $1", orig["id"]) == "ROUTED"
    refused = await wait_for(lambda: _statuses(axis, OTHER.organ_id, "02"), timeout=15)
    assert "BUSINESS_NOT_ORIGINAL_SENDER" in refused[0].description
    assert await db.fetchval("SELECT count(*) FROM deliveries WHERE document_id = $1",
                             row["id"]) == 0


async def test_unknown_original_is_held_then_linked_by_the_operator(flow_gateway, aiohttp_client,
                                                                   db, pki, axis, amqp):
    """A revoke naming a document not (yet) here: ``HELD`` with ``BUSINESS_ORIGINAL_UNKNOWN``,
    never dropped; the operator's ``route`` is refused until the original arrives, then links
    it (the original becomes REVOKED, the revoke is delivered typed)."""
    original = edoc(SENDER, [D1], await signed_pdf(pki, "Goc den sau"), number=1501)
    revoke = replace(original, bussiness=Bussiness(BussinessDocType.REVOKE,
                                                   original.document_id, "Thu hồi"))
    held = await _take_in(axis, db, revoke, kind=1, state="HELD")
    assert held["reject_code"] == "BUSINESS_ORIGINAL_UNKNOWN"
    client = await aiohttp_client(flow_gateway.web_app())
    ops = {"Authorization": "Bearer "
           + (await create_client(db, name="ops", role="operator")).token}
    path = f"/v1/documents/{held['id']}/resolution"
    resp = await client.post(path, headers=ops, json={"action": "route"})
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "BUSINESS_ORIGINAL_UNKNOWN"
    orig = await _take_in(axis, db, original, state="ROUTED")
    resp = await client.post(path, headers=ops, json={"action": "route"})
    assert resp.status == 200, await resp.text()
    assert await db.fetchval("SELECT state FROM documents WHERE id = $1", orig["id"]) == "REVOKED"
    assert await db.fetchval("SELECT kind FROM deliveries WHERE document_id = $1",
                             held["id"]) == "revoke"
    assert await db.fetchval("SELECT original_id FROM documents WHERE id = $1",
                             held["id"]) == orig["id"]
    # a dead typed delivery replayed by an operator is the same typed message again
    await wait_for(lambda: _published(db), timeout=15)
    first = [m for m in await _messages(flow_gateway, amqp, D1.organ_id) if m.get("kind")]
    delivery = await db.fetchval("UPDATE deliveries SET state = 'DEAD' WHERE document_id = $1"
                                 " RETURNING id", held["id"])
    await replay_delivery(db, flow_gateway.router, delivery, actor="test")
    await wait_for(lambda: _published(db), timeout=15)
    again = await _messages(flow_gateway, amqp, D1.organ_id)
    assert [m["kind"] for m in first] == [m["kind"] for m in again] == ["revoke"]
    assert again[0]["message_id"] == first[0]["message_id"]
    assert again[0]["business"]["originals"] == first[0]["business"]["originals"]


def _take_back(sender: Organ, original, description: str = "Gửi nhầm, xin lấy lại",
               **rf) -> bytes:
    response_for = ResponseFor(rf.get("organ_id", SENDER.organ_id),
                               rf.get("code", f"{original.code.code_number}/"
                                              f"{original.code.code_notation}"),
                               original.promulgation_info.promulgation_date,
                               rf.get("document_id", original.document_id))
    return build(StatusMessage(from_organ=sender, response_for=response_for, status_code="13",
                               description=description, timestamp=datetime.now(UTC)))


async def _status_row(db, reporter: str, code: str = "13"):
    return await db.fetchrow("SELECT * FROM status_events WHERE direction = 'inbound'"
                             " AND agency_code = $1 AND status_code = $2", reporter, code)


async def test_take_back_13_answered_15_and_16_needs_a_reason(flow_gateway, aiohttp_client,
                                                            city_client, db, pki, axis, amqp):
    """Status 13 from the original sender: take back PENDING, a ``take_back`` message to the
    eOffice; 16 without a reason is 422; 15 reaches the sender and the document is
    TAKEN_BACK. A 13 from another agency, or naming an unknown document, is kept unmatched
    with its problem code."""
    gw = flow_gateway
    original, orig = await _original(axis, db, pki, 1601, receivers=(D1,))
    await city_client.send_status(_take_back(SENDER, original), to=[D1.organ_id])

    async def pending():
        return await db.fetchval("SELECT take_back FROM documents WHERE id = $1",
                                 orig["id"]) == "PENDING"

    await wait_for(pending, timeout=20)
    assert "business.take_back_requested" in await _events(db, orig["id"])
    await wait_for(lambda: _published(db), timeout=15)
    typed = [m for m in await _messages(gw, amqp, D1.organ_id) if m.get("kind")]
    assert [m["kind"] for m in typed] == ["take_back"]
    assert typed[0]["document_id"] == str(orig["id"]) and typed[0]["attachments"] == []
    assert typed[0]["business"]["status"]["code"] == "13"

    client = await aiohttp_client(gw.web_app())
    auth = await _eoffice(client, db, D1.organ_id)
    url = f"/v1/documents/{orig['id']}/status"
    resp = await client.post(url, headers=auth, json={"agency": D1.organ_id, "status": "16"})
    assert resp.status == 422
    assert (await resp.json())["error"]["code"] == "STATUS_REASON_REQUIRED"
    resp = await client.post(url, headers=auth, json={"agency": D1.organ_id, "status": "15"})
    assert resp.status == 202, await resp.text()
    agreed = await wait_for(lambda: _statuses(axis, CITY.organ_id, "15"), timeout=15)
    assert agreed[0].from_organ == D1.organ_id
    row = await db.fetchrow("SELECT state, take_back FROM documents WHERE id = $1", orig["id"])
    assert (row["state"], row["take_back"]) == ("TAKEN_BACK", "AGREED")

    # the same document asked back by another agency, and an unknown document: kept unmatched
    other = _take_back(STRANGER, original)
    axis.post_document(other, from_organ=OTHER.organ_id, to=[D1.organ_id],
                       message_type="status")
    unknown = _take_back(SENDER, original, document_id=f"{SENDER.organ_id},2020/01/01,9/X")
    await city_client.send_status(unknown, to=[D1.organ_id])
    foreign = await wait_for(lambda: _status_row(db, OTHER.organ_id), timeout=20)
    assert foreign["document_id"] is None
    assert foreign["problem"] == "BUSINESS_NOT_ORIGINAL_SENDER"

    async def unmatched_unknown():
        return await db.fetchval("SELECT problem FROM status_events WHERE document_id IS NULL"
                                 " AND agency_code = $1", CITY.organ_id)

    assert await wait_for(unmatched_unknown, timeout=20) == "BUSINESS_ORIGINAL_UNKNOWN"


async def test_hostile_business_blocks_get_a_clear_02(flow_gateway, db, pki, axis):
    """Junk ``BussinessDocType``, a 10 KB ``DocumentId`` (in ``Bussiness`` and in
    ``ReplacementInfoList``), NUL bytes: each package is stored REJECTED with a precise code and
    answered 02 — the gateway never crashes and keeps taking in."""
    pdf = await signed_pdf(pki, "Goi doc hai")
    base = edoc(SENDER, [D1], pdf, number=1701)
    revoke = package(replace(base, bussiness=Bussiness(BussinessDocType.REVOKE,
                                                       base.document_id, "x")))
    long_id = "A" * 10_240
    variants = {
        "junk": revoke.replace(b"<edXML:BussinessDocType>1<",
                               b"<edXML:BussinessDocType>99999999999999999999<"),
        "long": revoke.replace(f"<edXML:DocumentId>{base.document_id}</edXML:DocumentId>\n"
                               "          <edXML:BussinessDocType>".encode(),
                               f"<edXML:DocumentId>{long_id}</edXML:DocumentId>\n"
                               "          <edXML:BussinessDocType>".encode()),
        "nul": revoke.replace(b"<edXML:BussinessDocReason>x<",
                              b"<edXML:BussinessDocReason>x\x00y<"),
    }
    assert all(v != revoke for v in variants.values())
    rep = package(replace(edoc(SENDER, [D1], pdf, number=1702), bussiness=Bussiness(
        BussinessDocType.REPLACE, None, "x",
        replacement_info_list=(ReplacementInfo((long_id,)),))))
    for raw in (*variants.values(), rep):
        axis.post_document(raw, from_organ=SENDER.organ_id, to=[D1.organ_id])

    async def all_rejected():
        rows = await db.fetch("SELECT reject_code FROM documents WHERE state = 'REJECTED'")
        return rows if len(rows) == 4 else None

    rows = await wait_for(all_rejected, timeout=30)
    codes = sorted(r["reject_code"] for r in rows)
    assert all(c.startswith(("EDXML_", "BUSINESS_")) for c in codes), codes
    assert "BUSINESS_INVALID" in codes or "EDXML_VALUE_TOO_LONG" in codes
    await wait_for(lambda: _statuses(axis, CITY.organ_id, "02", 3), timeout=20)
    # still alive: a good document goes through
    await _original(axis, db, pki, 1703, receivers=(D1,))
    assert await db.fetchval("SELECT count(*) FROM deliveries") == 1
