"""Issue 11 item 6: a document addressed to two agencies shows each of them only its own part.

D1 and D2 (both served here) receive one document; each eOffice token must see its own delivery,
its own statuses (with its staff's name, phone and e-mail), its own timeline entries and its own
business state, never the other agency's; an operator sees everything.
"""

from __future__ import annotations

import json
import uuid

import pytest

from gateway.api.auth import create_client
from gateway.demo.samples import edoc, package, signed_pdf
from tests.conftest import wait_for
from tests.flows.conftest import D1, D2, OTHER, SENDER

STAFF = {
    D1.organ_id: {"Department": "Văn thư D1", "Staff": "Trần Thị Một",
                  "Email": "mot@d1.example.vn", "Mobile": "0911000001"},
    D2.organ_id: {"Department": "Văn thư D2", "Staff": "Lê Văn Hai",
                  "Email": "hai@d2.example.vn", "Mobile": "0922000002"},
}
TEXT = {D1.organ_id: "D1 đã vào sổ số 11", D2.organ_id: "D2 đã vào sổ số 22"}
ERROR = {D1.organ_id: "adapter D1 refused: disk full", D2.organ_id: "adapter D2 refused: 503"}


pytestmark = pytest.mark.usefixtures("drained_agency_queues")


def _secrets(agency: str) -> list[str]:
    """Strings only ``agency``'s own view may contain."""
    return [*STAFF[agency].values(), TEXT[agency], ERROR[agency], "Hoàn thành ở " + agency]


async def _published(db, doc_id: str) -> bool:
    return not await db.fetchval("SELECT count(*) FROM deliveries WHERE document_id = $1"
                                 " AND state = 'PENDING'", uuid.UUID(doc_id))


async def test_each_agency_sees_only_its_part_of_a_shared_document(
        flow_gateway, aiohttp_client, db, pki):
    client = await aiohttp_client(flow_gateway.web_app())
    axis = (await create_client(db, name="peer", role="axis")).token
    pdf = await signed_pdf(pki, "Cong van hai noi nhan")
    resp = await client.post("/v1/axis/inbox", data=package(edoc(SENDER, [D1, D2], pdf,
                                                                  number=811)),
                             headers={"Authorization": f"Bearer {axis}"})
    assert resp.status == 200, await resp.text()
    doc_id = (await resp.json())["document_id"]
    tokens = {a: (await create_client(db, name=f"eo-{a}", role="eoffice", agencies=[a])).token
              for a in (D1.organ_id, D2.organ_id)}
    operator = (await create_client(db, name="ops", role="operator")).token
    stranger = (await create_client(db, name="eo-other", role="eoffice",
                                    agencies=[OTHER.organ_id])).token

    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    # each agency accepts with its own clerk; D2 then finishes (the document as a whole is DONE)
    for agency in (D1.organ_id, D2.organ_id):
        resp = await client.post(f"/v1/documents/{doc_id}/status", headers=auth(tokens[agency]),
                                 json={"agency": agency, "status": "03",
                                       "description": TEXT[agency], "staff": STAFF[agency]})
        assert resp.status == 202, await resp.text()
    resp = await client.post(f"/v1/documents/{doc_id}/status", headers=auth(tokens[D2.organ_id]),
                             json={"agency": D2.organ_id, "status": "06",
                                   "description": "Hoàn thành ở " + D2.organ_id})
    assert resp.status == 202, await resp.text()
    # each delivery had trouble once, with a detail naming only its own adapter (after the relay
    # published them: publishing clears last_error)
    await wait_for(lambda: _published(db, doc_id), timeout=15)
    for agency in (D1.organ_id, D2.organ_id):
        await db.execute("UPDATE deliveries SET last_error = $3 WHERE document_id = $1"
                         " AND agency_code = $2", uuid.UUID(doc_id), agency, ERROR[agency])
        await db.execute("INSERT INTO document_events (document_id, event, agency_code, detail)"
                         " VALUES ($1, 'delivery.retrying', $2, $3)", uuid.UUID(doc_id), agency,
                         {"error": ERROR[agency]})

    expected_state = {D1.organ_id: "ACCEPTED", D2.organ_id: "DONE"}
    for mine, theirs in ((D1.organ_id, D2.organ_id), (D2.organ_id, D1.organ_id)):
        resp = await client.get(f"/v1/documents/{doc_id}", headers=auth(tokens[mine]))
        assert resp.status == 200
        view = await resp.json()
        assert [d["agency_code"] for d in view["deliveries"]] == [mine]
        assert view["deliveries"][0]["last_error"] == ERROR[mine]
        assert view["statuses"] and {s["agency_code"] for s in view["statuses"]} == {mine}
        assert [s["staff"] for s in view["statuses"] if s["status_code"] == "03"] == [
            STAFF[mine]]
        assert all(e["agency_code"] in (None, mine) for e in view["timeline"]), view["timeline"]
        assert any(e["event"] == "delivery.retrying" for e in view["timeline"])
        assert view["state"] == expected_state[mine]
        text = json.dumps(view, ensure_ascii=False)
        leaked = [s for s in _secrets(theirs) if s in text]
        assert not leaked, f"{mine} sees {theirs}'s {leaked}"
        assert all(s in text for s in _secrets(mine) if s != "Hoàn thành ở " + D1.organ_id)
        # the list shows the same state; filtering on another agency's state finds nothing
        listed = await (await client.get("/v1/documents", headers=auth(tokens[mine]))).json()
        assert [(d["id"], d["state"]) for d in listed["documents"]] == [
            (doc_id, expected_state[mine])]
        other_state = expected_state[theirs]
        listed = await (await client.get(f"/v1/documents?state={other_state}",
                                         headers=auth(tokens[mine]))).json()
        assert listed["documents"] == []
        # the attachment is the document's own: both receivers may download it
        att = view["attachments"][0]["id"]
        got = await client.get(f"/v1/documents/{doc_id}/attachments/{att}",
                               headers=auth(tokens[mine]))
        assert got.status == 200 and await got.read() == pdf

    # an agency the document is not addressed to sees nothing of it
    resp = await client.get(f"/v1/documents/{doc_id}", headers=auth(stranger))
    assert resp.status == 404
    att = view["attachments"][0]["id"]
    resp = await client.get(f"/v1/documents/{doc_id}/attachments/{att}", headers=auth(stranger))
    assert resp.status == 404
    listed = await (await client.get("/v1/documents", headers=auth(stranger))).json()
    assert listed["documents"] == []

    # the operator sees both agencies' parts and the document's overall state
    full = await (await client.get(f"/v1/documents/{doc_id}", headers=auth(operator))).json()
    assert [d["agency_code"] for d in full["deliveries"]] == sorted([D1.organ_id, D2.organ_id])
    assert {s["agency_code"] for s in full["statuses"]} == {D1.organ_id, D2.organ_id}
    assert full["state"] == "DONE"
    text = json.dumps(full, ensure_ascii=False)
    assert all(s in text for s in _secrets(D1.organ_id)[:-1] + _secrets(D2.organ_id))
    listed = await (await client.get("/v1/documents?state=DONE", headers=auth(operator))).json()
    assert [d["id"] for d in listed["documents"]] == [doc_id]


async def test_the_sender_s_take_back_request_is_seen_by_every_receiver(
        flow_gateway, aiohttp_client, db, pki):
    """A ``13`` from the document's sender is addressed to all its receivers: each of them sees
    it (and may answer it), while their answers stay their own."""
    from datetime import UTC, datetime

    from gateway.business.statuses import record_inbound_status
    from gateway.edxml import Organ, ResponseFor, StaffInfo, StatusMessage

    client = await aiohttp_client(flow_gateway.web_app())
    axis = (await create_client(db, name="peer", role="axis")).token
    msg = edoc(SENDER, [D1, D2], await signed_pdf(pki, "Cong van lay lai"), number=812)
    resp = await client.post("/v1/axis/inbox", data=package(msg),
                             headers={"Authorization": f"Bearer {axis}"})
    doc_id = (await resp.json())["document_id"]
    request = StatusMessage(
        from_organ=Organ(SENDER.organ_id, SENDER.organ_name),
        response_for=ResponseFor(SENDER.organ_id, None, None, msg.document_id),
        status_code="13", description="Xin lấy lại do ban hành nhầm",
        timestamp=datetime.now(UTC), staff_info=StaffInfo(staff="Văn thư thành phố"))
    assert str(await record_inbound_status(db, request)) == doc_id
    for agency, answer in ((D1.organ_id, "15"), (D2.organ_id, "16")):
        token = (await create_client(db, name=f"eo-{agency}", role="eoffice",
                                     agencies=[agency])).token
        auth = {"Authorization": f"Bearer {token}"}
        resp = await client.post(f"/v1/documents/{doc_id}/status", headers=auth,
                                 json={"agency": agency, "status": answer,
                                       "description": f"Trả lời của {agency}"})
        assert resp.status == 202, await resp.text()
        view = await (await client.get(f"/v1/documents/{doc_id}", headers=auth)).json()
        seen = {(s["direction"], s["agency_code"], s["status_code"]) for s in view["statuses"]}
        assert ("inbound", SENDER.organ_id, "13") in seen
        assert ("outbound", agency, answer) in seen
        assert {a for _, a, _ in seen} == {agency, SENDER.organ_id}


async def test_a_receiver_added_later_is_not_named_to_the_first(flow_gateway, aiohttp_client,
                                                                db, pki):
    """One package per receiver with the same DocumentId: the second receiver's arrival is on
    the timeline (``receivers.added``) for itself and operators, not for the first receiver."""
    from dataclasses import replace

    client = await aiohttp_client(flow_gateway.web_app())
    axis = {"Authorization": f"Bearer {(await create_client(db, name='p', role='axis')).token}"}
    first = edoc(SENDER, [D1], await signed_pdf(pki, "Cong van tach goi"), number=813)
    for msg in (first, replace(first, to_organs=(D2,))):
        resp = await client.post("/v1/axis/inbox", data=package(msg), headers=axis)
        assert resp.status == 200, await resp.text()
    doc_id = (await resp.json())["document_id"]

    async def added(agencies: list[str] | None) -> list:
        role = "operator" if agencies is None else "eoffice"
        token = (await create_client(db, name=f"r{agencies}", role=role,
                                     agencies=agencies)).token
        view = await (await client.get(f"/v1/documents/{doc_id}",
                                       headers={"Authorization": f"Bearer {token}"})).json()
        return [e["detail"]["agencies"] for e in view["timeline"]
                if e["event"] == "receivers.added"]

    assert await added(None) == [[D2.organ_id]]
    assert await added([D2.organ_id]) == [[D2.organ_id]]
    assert await added([D1.organ_id]) == []
