"""Business flows SENT by the gateway (issue 13, sending side; QCVN 102:2016 ``Bussiness``
BussinessDocType 1/2/3 and status 13 answered 15/16; Decree 30/2020 Art. 18): the city's
eOffice revokes, updates, replaces and takes back one of its outbound documents.

Real PostgreSQL, RabbitMQ, signing pool and the VDXP simulator over HTTP; no sealing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway import edxml
from gateway.app import Gateway
from gateway.axis import MessageType
from gateway.demo.exchange import CITY, DISTRICT1, DISTRICT2
from tests.conftest import wait_for
from tests.flows.conftest import OTHER
from tests.flows.outbound_kit import (
    form,
    metadata,
    sender_settings,
    signed_by_officer,
    write_keys,
)
from tests.service.signing_client import bearer

D1, D2 = DISTRICT1.organ_id, DISTRICT2.organ_id


@pytest.fixture(scope="module")
def keys(pki, tmp_path_factory):
    return write_keys(tmp_path_factory.mktemp("flows-keys"), pki)


@pytest.fixture
async def gw(database_url, bus_prefix, pki, axis, keys, db):
    gateway = Gateway(sender_settings(database_url, bus_prefix, pki, axis.base_url, keys))
    await gateway.start()
    yield gateway
    await gateway.stop()


@pytest.fixture
async def client(gw, aiohttp_client):
    return await aiohttp_client(gw.web_app())


@pytest.fixture
async def eoffice(db):
    return await bearer(db, "eoffice", "city-eoffice", agencies=[CITY.organ_id])


@pytest.fixture
async def officer(db):
    return await bearer(db, "officer", "city-officer", key_aliases=["officer"])


async def _get(client, headers, doc_id: str) -> dict:
    resp = await client.get(f"/v1/outbound/{doc_id}", headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def _sent(client, eoffice, officer, number: int, receivers=(D1, D2)) -> dict:
    """A document submitted to ``receivers`` and settled (every copy accepted or refused)."""
    main = await signed_by_officer(client, officer, f"Cong van {number}")
    resp = await client.post("/v1/outbound", headers=eoffice, data=form(
        metadata(list(receivers), number), [("cv.pdf", main, "application/pdf")]))
    assert resp.status == 202, await resp.text()
    doc_id = (await resp.json())["id"]

    async def settled():
        doc = await _get(client, eoffice, doc_id)
        return doc if doc["state"] != "QUEUED" else None
    return await wait_for(settled, timeout=30)


def _packages(axis, receiver: str) -> list[edxml.EdocMessage]:
    return [p.parsed() for p in axis.sent_to(receiver, MessageType.EDOC)]


async def _flow(client, headers, doc_id: str, what: str, body: dict, key: str | None = None):
    extra = {"Idempotency-Key": key} if key else {}
    return await client.post(f"/v1/outbound/{doc_id}/{what}", json=body,
                             headers={**headers, **extra})


def _answer(reporter: str, original: dict, code: str, text: str) -> bytes:
    """A status package from a receiver answering the city's request about ``original``."""
    return edxml.build(edxml.StatusMessage(
        from_organ=edxml.Organ(reporter), response_for=edxml.ResponseFor(
            CITY.organ_id, f"{original['code_number']}/{original['code_notation']}",
            None, original["edxml_document_id"]),
        status_code=code, description=text, timestamp=datetime.now(UTC)))


async def test_revoke_reaches_each_receiver_once_and_is_idempotent(client, gw, axis, eoffice,
                                                                   officer):
    """Decree 30 Art. 18.4 / QCVN 102 Bussiness type 1: the original's header, Bussiness
    naming its DocumentId, one copy per receiver; the document is REVOKED; the same request
    again answers the first; another revoke is 409 OUTBOUND_REVOKED; answers 15 show."""
    doc = await _sent(client, eoffice, officer, 301)
    assert doc["state"] == "SENT"
    body = {"reason": "Ban hành nhầm", "staff": {"staff": "Trần B", "department": "Văn phòng"}}
    resp = await _flow(client, eoffice, doc["id"], "revoke", body)
    assert resp.status == 202, await resp.text()
    first = await resp.json()
    assert first["state"] == "REVOKED" and sorted(first["receivers"]) == [D1, D2]
    again = await _flow(client, eoffice, doc["id"], "revoke", body)
    assert again.status == 202 and (await again.json())["flow_document"] == \
        first["flow_document"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = await _flow(client, eoffice, doc["id"], "revoke", {"reason": "Lý do khác"})
    assert other.status == 409 and (await other.json())["error"]["code"] == "OUTBOUND_REVOKED"

    await wait_for(lambda: all(len(_packages(axis, r)) == 2 for r in (D1, D2)) or None,
                   timeout=30)
    for receiver in (D1, D2):
        original, revoke = _packages(axis, receiver)
        assert original.bussiness is None
        b = revoke.bussiness
        assert b.bussiness_doc_type == edxml.BussinessDocType.REVOKE
        assert b.document_id == original.document_id == doc["edxml_document_id"]
        assert b.bussiness_doc_reason == "Ban hành nhầm" and b.staff_info.staff == "Trần B"
        assert revoke.code == original.code and revoke.subject == original.subject
    for receiver in (D1, D2):
        axis.post_document(_answer(receiver, doc, "15", "Đã hủy văn bản"),
                           message_type=MessageType.STATUS, to=[CITY.organ_id])

    async def answered():
        d = await _get(client, eoffice, doc["id"])
        flows = d["flows"]
        return d if flows and flows[0]["outcome"] == "AGREED" else None
    final = await wait_for(answered, timeout=30)
    assert final["state"] == "REVOKED"
    flow = final["flows"][0]
    assert flow["kind"] == "revoke" and flow["reason"] == "Ban hành nhầm"
    assert {r: a["code"] for r, a in flow["answers"].items()} == {D1: "15", D2: "15"}
    # the flow row is the sender's, linked to the original, sent through the outbound path
    row = await _get(client, eoffice, first["flow_document"])
    assert row["original_id"] == doc["id"]
    assert {r["receiver"]: r["state"] for r in row["receivers"]} == {D1: "SENT", D2: "SENT"}


async def test_take_back_status_13_answered_15_and_16(client, gw, axis, eoffice, officer):
    """QCVN 102 §3 status 13 (yêu cầu lấy lại) to each receiver, ResponseFor = the original;
    answers 15/16 from the receivers show per receiver; a second take back while one is
    pending is 409 TAKE_BACK_PENDING."""
    doc = await _sent(client, eoffice, officer, 302)
    resp = await _flow(client, eoffice, doc["id"], "take-back", {"reason": "Gửi nhầm"})
    assert resp.status == 202, await resp.text()
    assert (await resp.json())["take_back"] == "PENDING"
    second = await _flow(client, eoffice, doc["id"], "take-back", {"reason": "Lần nữa"})
    assert second.status == 409
    assert (await second.json())["error"]["code"] == "TAKE_BACK_PENDING"
    await wait_for(lambda: all(any(s.status_code == "13" for s in axis.statuses_for(r))
                               for r in (D1, D2)) or None, timeout=30)
    for receiver in (D1, D2):
        thirteen = [s for s in axis.statuses_for(receiver) if s.status_code == "13"]
        assert len(thirteen) == 1
        assert thirteen[0].response_for_document_id == doc["edxml_document_id"]
        assert thirteen[0].response_for_organ == CITY.organ_id
        assert thirteen[0].description == "Gửi nhầm"
    axis.post_document(_answer(D1, doc, "15", "Đồng ý"), message_type=MessageType.STATUS,
                       to=[CITY.organ_id])
    axis.post_document(_answer(D2, doc, "16", "Đã xử lý xong, không trả lại"),
                       message_type=MessageType.STATUS, to=[CITY.organ_id])

    async def answered():
        d = await _get(client, eoffice, doc["id"])
        return d if len(d["flows"][0]["answers"]) == 2 else None
    final = await wait_for(answered, timeout=30)
    flow = final["flows"][0]
    assert flow["kind"] == "take_back" and flow["outcome"] == "REFUSED"
    assert {r: a["code"] for r, a in flow["answers"].items()} == {D1: "15", D2: "16"}
    assert final["state"] == "SENT"
    # every receiver answered: the take back is settled and another may be asked for; the same
    # receiver's second 15 (another message, another time) counts for the second one
    again = await _flow(client, eoffice, doc["id"], "take-back", {"reason": "Hỏi lại"})
    assert again.status == 202, await again.text()
    axis.post_document(_answer(D1, doc, "15", "Đồng ý lần hai"),
                       message_type=MessageType.STATUS, to=[CITY.organ_id])

    async def second_answered():
        d = await _get(client, eoffice, doc["id"])
        return d if len(d["flows"]) == 2 and d["flows"][1]["answers"] else None
    later = await wait_for(second_answered, timeout=30)
    assert later["flows"][1]["answers"][D1]["description"] == "Đồng ý lần hai"


async def test_update_adds_and_removes_receivers(client, gw, axis, eoffice, officer):
    """QCVN 102 Bussiness type 2: BussinessDocumentInfo (DocumentInfo 0, DocumentReceiver 1,
    ReceiverList = receivers after) to the current and removed receivers; the added receiver
    gets the document itself (type 0); the document is UPDATED."""
    doc = await _sent(client, eoffice, officer, 303)
    data = form({"reason": "Sửa nơi nhận", "receivers_added": [OTHER.organ_id],
                 "receivers_removed": [D2]}, [])
    resp = await client.post(f"/v1/outbound/{doc['id']}/update", headers=eoffice, data=data)
    assert resp.status == 202, await resp.text()
    body = await resp.json()
    assert body["state"] == "UPDATED" and body["added"] == [OTHER.organ_id]
    await wait_for(lambda: (len(_packages(axis, D1)) == 2 and len(_packages(axis, D2)) == 2
                            and len(_packages(axis, OTHER.organ_id)) == 1) or None, timeout=30)
    for receiver in (D1, D2):
        update = _packages(axis, receiver)[1].bussiness
        assert update.bussiness_doc_type == edxml.BussinessDocType.UPDATE
        assert update.document_id == doc["edxml_document_id"]
        info = update.bussiness_document_info
        assert info.document_info is False and info.document_receiver is True
        assert [r.organ_id for r in info.receivers] == [D1, OTHER.organ_id]
    fresh = _packages(axis, OTHER.organ_id)[0]
    assert fresh.bussiness is None and fresh.document_id == doc["edxml_document_id"]
    # later flows go to the receivers after the update
    resp = await _flow(client, eoffice, doc["id"], "take-back", {"reason": "Lấy lại"})
    assert sorted((await resp.json())["receivers"]) == sorted([D1, OTHER.organ_id])


async def test_replace_is_a_new_document_linked_to_the_original(client, gw, axis, eoffice,
                                                                officer):
    """QCVN 102 Bussiness type 3: a new document with its own number whose
    ReplacementInfoList names the original; the original is REPLACED; a flow on it is 409."""
    doc = await _sent(client, eoffice, officer, 304)
    main = await signed_by_officer(client, officer, "Cong van thay the")
    meta = metadata([D1, D2], 305, reason="Thay thế văn bản 304")
    resp = await client.post(f"/v1/outbound/{doc['id']}/replace", headers=eoffice,
                             data=form(meta, [("cv.pdf", main, "application/pdf")]))
    assert resp.status == 202, await resp.text()
    new = await resp.json()
    assert new["replaces"]["state"] == "REPLACED" and new["id"] != doc["id"]
    await wait_for(lambda: len(_packages(axis, D1)) == 2 or None, timeout=30)
    replacement = _packages(axis, D1)[1]
    assert replacement.code.code_number == "305"
    b = replacement.bussiness
    assert b.bussiness_doc_type == edxml.BussinessDocType.REPLACE
    assert b.replacement_info_list[0].document_ids == (doc["edxml_document_id"],)
    original = await _get(client, eoffice, doc["id"])
    assert original["state"] == "REPLACED"
    assert original["flows"][0]["kind"] == "replace"
    assert original["flows"][0]["flow_document"] == new["id"]
    assert (await _get(client, eoffice, new["id"]))["original_id"] == doc["id"]
    late = await _flow(client, eoffice, doc["id"], "revoke", {"reason": "x"})
    assert late.status == 409 and (await late.json())["error"]["code"] == "OUTBOUND_REPLACED"


async def test_hostile_flow_requests_are_4xx_with_codes(client, gw, axis, eoffice, officer, db):
    """A reason of 1 MB (413), NUL (400 INVALID_JSON), an unknown receiver added (422
    RECEIVER_UNKNOWN, the directory being synced), another agency's token or an unknown id
    (404 OUTBOUND_NOT_FOUND), a flow on a FAILED document (409 OUTBOUND_NOT_SENT)."""
    doc = await _sent(client, eoffice, officer, 306)
    url = doc["id"]
    big = await _flow(client, eoffice, url, "revoke", {"reason": "x" * (1 << 20)})
    assert big.status == 413 and (await big.json())["error"]["code"] == "PAYLOAD_TOO_LARGE"
    nul = await _flow(client, eoffice, url, "revoke", {"reason": "a\x00b"})
    assert nul.status == 400 and (await nul.json())["error"]["code"] == "INVALID_JSON"
    ctl = await _flow(client, eoffice, url, "take-back", {"reason": "a\u202eb"})
    assert ctl.status == 422 and (await ctl.json())["error"]["code"] == "FLOW_FIELD_INVALID"
    missing = await _flow(client, eoffice, url, "take-back", {})
    assert (await missing.json())["error"]["code"] == "FLOW_FIELD_MISSING"
    await db.execute("INSERT INTO agencies (code, name) VALUES ($1, 'd1'), ($2, 'd2')"
                     " ON CONFLICT DO NOTHING", D1, D2)
    unknown = await client.post(f"/v1/outbound/{url}/update", headers=eoffice, data=form(
        {"reason": "Thêm nơi nhận", "receivers_added": ["000.00.99.Z99"]}, []))
    assert unknown.status == 422, await unknown.text()
    assert (await unknown.json())["error"]["code"] == "RECEIVER_UNKNOWN"
    stranger = await bearer(db, "eoffice", "other-eoffice", agencies=[OTHER.organ_id])
    for who, target in ((stranger, url), (eoffice, "6f1c0e4e-0000-4000-8000-000000000000"),
                        (eoffice, "not-a-uuid")):
        resp = await _flow(client, who, target, "revoke", {"reason": "x"})
        assert resp.status == 404 and (await resp.json())["error"]["code"] == \
            "OUTBOUND_NOT_FOUND"
    await db.execute("DELETE FROM agencies WHERE code = ANY($1)", [D1, D2])
    failed = await _sent(client, eoffice, officer, 307, receivers=("000.00.98.Z98",))
    assert failed["state"] == "FAILED"
    for what in ("revoke", "take-back"):
        resp = await _flow(client, eoffice, failed["id"], what, {"reason": "x"})
        assert resp.status == 409, await resp.text()
        err = (await resp.json())["error"]
        assert err["code"] == "OUTBOUND_NOT_SENT" and err["details"]["state"] == "FAILED"
