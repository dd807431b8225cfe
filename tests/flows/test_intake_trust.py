"""Intake decides on content, signer and limits, not on a package's claims (issue 11, items
1, 4 and 5): a forged package cannot pre-empt the genuine one, a seal of another agency is
caught, a PDF that a job limit stops is answered, and each policy action does what it says."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from gateway.api.auth import create_client
from gateway.app import Gateway
from gateway.demo.exchange import organ
from gateway.demo.samples import edoc, package, signed_pdf, tamper
from gateway.edxml import TraceHeader
from signing.testpki.pdfs import make_pdf
from tests.flows.conftest import D1, D2, OTHER, SENDER, flow_settings
from tests.signing.hostile_pdfs import xref_stream_bomb


@pytest.fixture
async def make_gateway(database_url, bus_prefix, pki, axis, db, aiohttp_client):
    """``await make_gateway(**settings)`` -> (gateway, client, axis-token headers)."""
    started = []
    token = (await create_client(db, name="axis-peer", role="axis")).token
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/xml"}

    async def make(**extra):
        gw = Gateway(flow_settings(database_url, bus_prefix, pki, axis, **extra),
                     run_background=False)
        await gw.start()
        started.append(gw)
        return gw, await aiohttp_client(gw.web_app()), headers

    yield make
    for gw in started:
        await gw.stop()


async def push(client, headers, raw: bytes) -> dict:
    resp = await client.post("/v1/axis/inbox", data=raw, headers=headers)
    body = await resp.json()
    assert resp.status in (200, 422), body
    return body


async def events(db, doc_id) -> list[tuple[str, dict]]:
    rows = await db.fetch("SELECT event, detail FROM document_events WHERE document_id = $1"
                          " ORDER BY id", uuid.UUID(str(doc_id)))
    return [(r["event"], r["detail"]) for r in rows]


def another_hop(msg, organ_id: str = "000.00.00.G22"):
    """The same package after one more axis hop (a TraceHeader appended)."""
    hop = TraceHeader(organ_id, datetime.now(UTC) + timedelta(seconds=5))
    return dataclasses.replace(msg, trace_headers=(*msg.trace_headers, hop))


async def test_forged_package_does_not_preempt_the_genuine_one(make_gateway, db, pki):
    gw, client, headers = await make_gateway()
    genuine_pdf = await signed_pdf(pki, "Cong van that")
    forged_pdf = await signed_pdf(pki, "Cong van gia")
    genuine = edoc(SENDER, [D1], genuine_pdf, number=7001)
    forged = dataclasses.replace(genuine, subject="Văn bản giả mạo",
                                 attachments=(dataclasses.replace(
                                     genuine.attachments[0], data=forged_pdf),))
    first = await push(client, headers, package(forged))
    assert first["state"] == "ROUTED" and first["duplicate"] is False

    second = await push(client, headers, package(genuine))
    assert second["duplicate"] is False, "the genuine package was dropped as a duplicate"
    assert second["state"] == "CONFLICT" and second["reject_code"] == "DOCUMENT_ID_CONFLICT"
    assert second["document_id"] != first["document_id"]
    # kept, linked, on both timelines, counted; nothing routed and no status for it
    row = await db.fetchrow("SELECT state, conflicts_with, edxml FROM documents WHERE id = $1",
                            uuid.UUID(second["document_id"]))
    assert row["state"] == "CONFLICT" and str(row["conflicts_with"]) == first["document_id"]
    assert row["edxml"] == package(genuine)
    assert ("conflict", ) == tuple(e for e, _ in await events(db, first["document_id"])
                                   if e == "conflict")
    mine = [d for e, d in await events(db, second["document_id"]) if e == "conflict"]
    assert mine and mine[0]["with"] == first["document_id"]
    assert await db.fetchval("SELECT count(*) FROM deliveries WHERE document_id = $1",
                             uuid.UUID(second["document_id"])) == 0
    assert gw.metrics.intake_conflicts._value.get() == 1

    # repeats answer their own package's result, whichever hop they took
    again = await push(client, headers, package(another_hop(genuine)))
    assert again["duplicate"] is True and again["document_id"] == second["document_id"]
    assert again["state"] == "CONFLICT"
    forged_again = await push(client, headers, package(another_hop(forged)))
    assert forged_again["duplicate"] is True and forged_again["state"] == "ROUTED"
    assert forged_again["document_id"] == first["document_id"]


async def test_a_rejected_forgery_does_not_answer_for_the_genuine_one(make_gateway, pki):
    _, client, headers = await make_gateway()
    pdf = await signed_pdf(pki, "Cong van")
    genuine = edoc(SENDER, [D1], pdf, number=7002)
    altered = dataclasses.replace(genuine, attachments=(dataclasses.replace(
        genuine.attachments[0], data=tamper(pdf, "Cong van")),))
    first = await push(client, headers, package(altered))
    assert first["error"]["code"] == "SIGNATURE_INVALID"
    again = await push(client, headers, package(altered))  # its repeat: the same answer
    assert again["error"]["code"] == "SIGNATURE_INVALID"
    second = await push(client, headers, package(genuine))
    # a rejected package owns no identity: the genuine one goes on as if it came first
    assert second.get("state") == "ROUTED" and second["duplicate"] is False, second


async def test_a_copy_for_an_unserved_agency_does_not_answer_for_ours(make_gateway, pki):
    _, client, headers = await make_gateway()
    pdf = await signed_pdf(pki, "Gui nham")
    elsewhere = edoc(SENDER, [organ(OTHER)], pdf, number=7011)
    first = await push(client, headers, package(elsewhere))
    assert first["error"]["code"] == "NOT_ADDRESSED_TO_US"
    ours = await push(client, headers, package(dataclasses.replace(elsewhere,
                                                                    to_organs=(D1,))))
    assert ours["state"] == "ROUTED" and ours["duplicate"] is False


async def test_a_copy_for_another_receiver_of_a_held_document_is_kept(make_gateway, db, pki):
    _, client, headers = await make_gateway(intake={"unknown_sender": "hold"})
    operator = {"Authorization": "Bearer " + (await create_client(
        db, name="ops2", role="operator")).token}
    pdf = await signed_pdf(pki, "Hai ban")
    to_d1 = edoc(SENDER, [D1], pdf, number=7012)
    held = await push(client, headers, package(to_d1))
    assert held["state"] == "HELD"
    copy = await push(client, headers, package(dataclasses.replace(to_d1, to_organs=(D2,))))
    assert copy["duplicate"] is True and copy["state"] == "HELD"
    doc_id = uuid.UUID(held["document_id"])
    codes = {r["agency_code"] for r in await db.fetch(
        "SELECT agency_code FROM status_events WHERE document_id = $1 AND status_code = '01'",
        doc_id)}
    assert codes == {D1.organ_id, D2.organ_id}  # each copy acknowledged on arrival
    resp = await client.post(f"/v1/documents/{doc_id}/resolution", json={"action": "route"},
                             headers=operator)
    assert resp.status == 200 and set((await resp.json())["receivers"]) == {
        D1.organ_id, D2.organ_id}


async def test_same_content_for_another_receiver_is_the_same_document(make_gateway, db, pki):
    _, client, headers = await make_gateway()
    pdf = await signed_pdf(pki, "Mot goi moi noi nhan")
    to_d1 = edoc(SENDER, [D1], pdf, number=7003)
    first = await push(client, headers, package(to_d1))
    second = await push(client, headers, package(dataclasses.replace(to_d1, to_organs=(D2,))))
    assert second["duplicate"] is True and second["document_id"] == first["document_id"]
    agencies = {r["agency_code"] for r in await db.fetch("SELECT agency_code FROM deliveries")}
    assert agencies == {D1.organ_id, D2.organ_id}


async def test_seal_of_another_agency_is_signer_not_sender(make_gateway, pki, db):
    other = organ(OTHER)
    _, client, headers = await make_gateway(senders=[
        {"agency": other.organ_id, "subjects": ["O=UBND huyện Khác"]},
        {"agency": SENDER.organ_id, "subjects": ["O=UBND tỉnh*"]},
    ])
    pdf = await signed_pdf(pki, "Con dau cua thanh pho")  # sealed by the city's certificate
    claimed = await push(client, headers, package(edoc(other, [D1], pdf, number=7004)))
    assert claimed["error"]["code"] == "SIGNER_NOT_SENDER"
    own = await push(client, headers, package(edoc(SENDER, [D1], pdf, number=7005)))
    assert own["state"] == "ROUTED"
    verified = next(d for e, d in await events(db, own["document_id"]) if e == "verified")
    assert verified["sender_check"]["result"] == "ok"
    assert "SENDER_NOT_BOUND" not in verified["flags"]


async def test_unbound_sender_is_routed_flagged_or_held_by_policy(make_gateway, pki, db):
    pdf = await signed_pdf(pki, "Chua dang ky")
    _, client, headers = await make_gateway()
    routed = await push(client, headers, package(edoc(SENDER, [D1], pdf, number=7006)))
    assert routed["state"] == "ROUTED"
    verified = next(d for e, d in await events(db, routed["document_id"]) if e == "verified")
    assert verified["flags"] == ["SENDER_NOT_BOUND"]
    assert verified["sender_check"]["result"] == "unbound"

    _, client, headers = await make_gateway(intake={"unknown_sender": "hold"})
    held = await push(client, headers, package(edoc(SENDER, [D1], pdf, number=7007)))
    assert held["state"] == "HELD" and held["reject_code"] == "SENDER_NOT_BOUND"
    doc_id = uuid.UUID(held["document_id"])
    assert await db.fetchval("SELECT count(*) FROM deliveries WHERE document_id = $1",
                             doc_id) == 0
    codes = [r["status_code"] for r in await db.fetch(
        "SELECT status_code FROM status_events WHERE document_id = $1", doc_id)]
    assert codes == ["01"]  # acknowledged on arrival, not yet accepted or refused


async def test_unsigned_policy_reject(make_gateway):
    _, client, headers = await make_gateway(intake={"unsigned": "reject"})
    body = await push(client, headers, package(edoc(SENDER, [D1], make_pdf(1, "x"),
                                                    number=7008)))
    assert body["error"]["code"] == "SIGNATURE_MISSING"


async def test_pdf_over_the_job_limits_rejects_the_document(make_gateway, db):
    _, client, headers = await make_gateway()
    bomb = xref_stream_bomb()
    body = await push(client, headers, package(edoc(SENDER, [D1], bomb, number=7009)))
    assert body["error"]["code"] == "PDF_TOO_COMPLEX"
    row = await db.fetchrow("SELECT state, reject_code, edxml FROM documents"
                            " WHERE edxml_document_id LIKE '%7009/%'")
    assert row["state"] == "REJECTED" and row["reject_code"] == "PDF_TOO_COMPLEX"
    assert row["edxml"]  # kept for inspection
    report = await db.fetchval("SELECT report FROM signature_reports")
    assert report["error"]["code"] == "PDF_TOO_COMPLEX"


async def test_operator_routes_a_held_document_and_rejects_a_conflict(make_gateway, db, pki):
    _, client, headers = await make_gateway(intake={"unknown_sender": "hold"})
    operator = {"Authorization": "Bearer " + (await create_client(
        db, name="ops", role="operator")).token}
    eoffice = {"Authorization": "Bearer " + (await create_client(
        db, name="eo", role="eoffice", agencies=[D1.organ_id])).token}
    pdf = await signed_pdf(pki, "Cho quyet dinh")
    msg = edoc(SENDER, [D1, D2], pdf, number=7010)
    held = await push(client, headers, package(msg))
    assert held["state"] == "HELD"
    url = f"/v1/documents/{held['document_id']}/resolution"

    refused = await client.post(url, json={"action": "route"}, headers=eoffice)
    assert refused.status == 403
    bad = await client.post(url, json={"action": "reject"}, headers=operator)  # no reason
    assert bad.status == 422 and (await bad.json())["error"]["code"] == "RESOLUTION_INVALID"
    for hostile in (b"[" * 100_000, b"\xff\xfe", b'{"action": 1}'):
        resp = await client.post(url, data=hostile, headers=operator)
        assert resp.status in (400, 413, 422)
    ok = await client.post(url, json={"action": "route", "reason": "đã xác minh"},
                           headers=operator)
    assert ok.status == 200, await ok.text()
    assert (await ok.json())["state"] == "ROUTED"
    doc_id = uuid.UUID(held["document_id"])
    agencies = {r["agency_code"] for r in await db.fetch(
        "SELECT agency_code FROM deliveries WHERE document_id = $1", doc_id)}
    assert agencies == {D1.organ_id, D2.organ_id}
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE destination = 'amqp'") == 2
    again = await client.post(url, json={"action": "route"}, headers=operator)
    assert again.status == 409 and (await again.json())["error"]["code"] == "DOCUMENT_NOT_HELD"

    # a conflict, rejected: 01 then 02 to the sender, nothing routed
    forged = dataclasses.replace(msg, subject="Khác nội dung")
    conflict = await push(client, headers, package(forged))
    assert conflict["state"] == "CONFLICT"
    url = f"/v1/documents/{conflict['document_id']}/resolution"
    resp = await client.post(url, json={"action": "reject", "reason": "gói tin giả mạo"},
                             headers=operator)
    assert resp.status == 200 and (await resp.json())["state"] == "REJECTED"
    cid = uuid.UUID(conflict["document_id"])
    codes = sorted(r["status_code"] for r in await db.fetch(
        "SELECT status_code FROM status_events WHERE document_id = $1", cid))
    assert codes == ["01", "01", "02", "02"]
    assert await db.fetchval("SELECT count(*) FROM deliveries WHERE document_id = $1", cid) == 0
    events_ = [e for e, _ in await events(db, cid)]
    assert "resolved" in events_
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'document.resolve'"
                             ) == 2


async def test_a_damaged_copy_after_the_genuine_one_is_a_conflict_not_a_02(make_gateway, db,
                                                                          pki):
    _, client, headers = await make_gateway()
    pdf = await signed_pdf(pki, "That truoc")
    genuine = edoc(SENDER, [D1], pdf, number=7013)
    first = await push(client, headers, package(genuine))
    assert first["state"] == "ROUTED"
    damaged = dataclasses.replace(genuine, attachments=(dataclasses.replace(
        genuine.attachments[0], data=tamper(pdf, "That truoc")),))
    second = await push(client, headers, package(damaged))
    assert second.get("state") == "CONFLICT", second
    codes = [r["status_code"] for r in await db.fetch(
        "SELECT status_code FROM status_events WHERE document_id = $1",
        uuid.UUID(second["document_id"]))]
    assert codes == []  # the sender is not told that its (accepted) document was refused


async def test_two_packages_of_one_identity_at_once_one_owner_one_conflict(make_gateway, db,
                                                                          pki):
    import asyncio

    _, client, headers = await make_gateway()
    one = edoc(SENDER, [D1], await signed_pdf(pki, "Mot"), number=7014)
    other = dataclasses.replace(one, subject="Cùng mã, khác nội dung")
    for _ in range(3):
        await db.execute("DELETE FROM documents WHERE edxml_document_id = $1", one.document_id)
        results = await asyncio.gather(push(client, headers, package(one)),
                                       push(client, headers, package(other)))
        assert sorted(r["state"] for r in results) == ["CONFLICT", "ROUTED"], results
