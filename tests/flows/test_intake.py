"""Intake over real HTTP, PostgreSQL, RabbitMQ, the axis simulator and the signing pool."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import uuid

from gateway.api.auth import create_client
from gateway.business.statuses import DocumentRef, emit_status
from gateway.db import audit
from gateway.demo.samples import edoc, malformed_package, package, signed_pdf, tamper
from gateway.edxml import Attachment
from tests.conftest import wait_for
from tests.flows.conftest import CITY, D1, D2, OTHER, SENDER


async def _statuses(axis, code: str) -> list:
    return [s for s in axis.statuses_for(CITY.organ_id) if s.status_code == code]


async def _queue_messages(gw, amqp, agency: str) -> list[dict]:
    channel = await amqp.channel()
    queue = await channel.get_queue(gw.topology.agency_queue(agency), ensure=False)
    out = []
    while (msg := await queue.get(no_ack=True, fail=False)) is not None:
        out.append(json.loads(msg.body))
    await channel.close()
    return out


async def test_push_accepts_routes_and_answers_01(flow_gateway, aiohttp_client, db, pki, axis,
                                                 amqp):
    gw = flow_gateway
    client = await aiohttp_client(gw.web_app())
    token = (await create_client(db, name="axis-peer", role="axis")).token
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/xml"}
    pdf = await signed_pdf(pki, "Cong van day")
    raw = package(edoc(SENDER, [D1, D2], pdf, number=101))

    resp = await client.post("/v1/axis/inbox", data=raw, headers=auth)
    body = await resp.json()
    assert resp.status == 200, body
    assert body["state"] == "ROUTED" and body["duplicate"] is False

    again = await client.post("/v1/axis/inbox", data=raw, headers=auth)
    again_body = await again.json()
    assert again.status == 200
    assert again_body["duplicate"] is True
    assert again_body["document_id"] == body["document_id"]
    assert await db.fetchval("SELECT count(*) FROM documents") == 1
    assert await db.fetchval("SELECT count(*) FROM deliveries") == 2

    doc = await db.fetchrow("SELECT signature_verdict, state FROM documents")
    assert doc["signature_verdict"] == "valid"
    # 01 from each receiving district reaches the city through the axis
    await wait_for(lambda: _count(axis, "01", 2), timeout=15)
    await wait_for(lambda: _outbox_empty(db), timeout=15)
    msgs = {a: await _queue_messages(gw, amqp, a) for a in (D1.organ_id, D2.organ_id)}
    for agency, got in msgs.items():
        assert len(got) == 1, agency
        message = got[0]
        assert message["schema"] == "edoc.delivery/1"
        assert message["agency"] == agency
        assert message["signature"]["verdict"] == "valid"
        att = message["attachments"][0]
        assert att["url"].endswith(f"/attachments/{att['id']}")
        assert len(att["sha256"]) == 64

    # the eOffice of D1 downloads the PDF: bytes, digests, and headers that keep a browser
    # from sniffing or running what a sender declared
    reader = (await create_client(db, name="eoffice-d1", role="eoffice",
                                  agencies=[D1.organ_id])).token
    att = msgs[D1.organ_id][0]["attachments"][0]
    path = att["url"][att["url"].index("/v1/"):]
    got = await client.get(path, headers={"Authorization": f"Bearer {reader}"})
    data = await got.read()
    assert got.status == 200 and data == pdf
    assert got.headers["X-Content-SHA256"] == att["sha256"] == hashlib.sha256(pdf).hexdigest()
    assert got.headers["Content-Digest"] == (
        "sha-256=:" + base64.b64encode(hashlib.sha256(pdf).digest()).decode() + ":")
    assert got.headers["Content-Type"] == "application/pdf"
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert got.headers["Content-Security-Policy"].startswith("sandbox")
    assert got.headers["Content-Disposition"].startswith("attachment;")


async def test_rejections_are_stored_answered_and_explained(flow_gateway, aiohttp_client, db,
                                                           pki, axis):
    client = await aiohttp_client(flow_gateway.web_app())
    token = (await create_client(db, name="axis-peer", role="axis")).token
    auth = {"Authorization": f"Bearer {token}"}
    pdf = await signed_pdf(pki, "Van ban bi sua")

    bad_sig = package(edoc(SENDER, [D1], tamper(pdf, "Van ban bi sua"), number=201))
    resp = await client.post("/v1/axis/inbox", data=bad_sig, headers=auth)
    err = (await resp.json())["error"]
    assert resp.status == 422 and err["code"] == "SIGNATURE_INVALID"
    assert "Không hợp lệ" in err["message"]

    malformed = malformed_package(SENDER, D1, 202)
    resp = await client.post("/v1/axis/inbox", data=malformed, headers=auth)
    err = (await resp.json())["error"]
    assert resp.status == 422 and err["code"] == "EDXML_MISSING_ELEMENT"
    assert err["details"]["document_id"]

    stranger = package(edoc(SENDER, [OTHER_ORGAN], pdf, number=203))
    resp = await client.post("/v1/axis/inbox", data=stranger, headers=auth)
    assert (await resp.json())["error"]["code"] == "NOT_ADDRESSED_TO_US"

    resp = await client.post("/v1/axis/inbox", data=b"<not-xml", headers=auth)
    assert resp.status == 422
    assert (await resp.json())["error"]["code"] == "EDXML_NOT_WELL_FORMED"

    rows = await db.fetch("SELECT state, reject_code FROM documents ORDER BY created_at")
    assert [r["state"] for r in rows] == ["REJECTED"] * 4
    assert {r["reject_code"] for r in rows} == {"SIGNATURE_INVALID", "EDXML_MISSING_ELEMENT",
                                                 "NOT_ADDRESSED_TO_US", "EDXML_NOT_WELL_FORMED"}
    assert await db.fetchval("SELECT count(*) FROM deliveries") == 0
    # 02 with a reason from the addressed district for the bad signature and the malformed
    # package (sender and DocumentId still readable); the pushed package addressed to nobody
    # we serve and the unreadable one are answered by the HTTP 422 alone.
    rejected = await wait_for(lambda: _count(axis, "02", 2), timeout=15)
    assert {s.from_organ for s in rejected} == {D1.organ_id}
    assert {s.description.rsplit("[", 1)[1] for s in rejected} == {
        "SIGNATURE_INVALID]", "EDXML_MISSING_ELEMENT]"}
    assert all(s.description.startswith("Từ chối tiếp nhận") for s in rejected)


OTHER_ORGAN = __import__("gateway.edxml", fromlist=["Organ"]).Organ(OTHER.organ_id, OTHER.name)


async def test_axis_poller_takes_in_once_for_two_receivers(flow_gateway, city_client, db, pki,
                                                           axis):
    pdf = await signed_pdf(pki, "Cong van qua truc")
    raw = package(edoc(SENDER, [D1, D2], pdf, number=301))
    await city_client.send_edoc(raw)
    # both districts' pollers see their own copy; one stores, the other deduplicates
    await wait_for(lambda: _acked(axis, 2), timeout=20)
    assert await db.fetchval("SELECT count(*) FROM documents") == 1
    assert await db.fetchval("SELECT count(*) FROM deliveries") == 2
    assert {a.status for a in axis.acks} == {"done"}
    await wait_for(lambda: _count(axis, "01", 2), timeout=15)


async def test_eoffice_status_reaches_the_sender(flow_gateway, aiohttp_client, db, pki, axis):
    client = await aiohttp_client(flow_gateway.web_app())
    axis_token = (await create_client(db, name="peer", role="axis")).token
    eoffice = (await create_client(db, name="d1", role="eoffice",
                                   agencies=[D1.organ_id])).token
    pdf = await signed_pdf(pki, "Cong van tra loi")
    resp = await client.post("/v1/axis/inbox", data=package(edoc(SENDER, [D1, D2], pdf,
                                                                  number=401)),
                             headers={"Authorization": f"Bearer {axis_token}"})
    doc_id = (await resp.json())["document_id"]
    auth = {"Authorization": f"Bearer {eoffice}"}
    resp = await client.post(f"/v1/documents/{doc_id}/status", headers=auth,
                             json={"agency": D1.organ_id, "status": "03"})
    assert resp.status == 202, await resp.text()
    repeat = await client.post(f"/v1/documents/{doc_id}/status", headers=auth,
                               json={"agency": D1.organ_id, "status": "03"})
    assert (await repeat.json())["duplicate"] is True
    resp = await client.post(f"/v1/documents/{doc_id}/status", headers=auth,
                             json={"agency": D2.organ_id, "status": "03"})
    assert resp.status == 403  # not this token's agency
    resp = await client.post(f"/v1/documents/{doc_id}/status", headers=auth,
                             json={"agency": D1.organ_id, "status": "02"})
    assert (await resp.json())["error"]["code"] == "STATUS_REASON_REQUIRED"
    accepted = await wait_for(lambda: _count(axis, "03", 1), timeout=15)
    assert accepted[0].from_organ == D1.organ_id
    detail = await (await client.get(f"/v1/documents/{doc_id}", headers=auth)).json()
    assert detail["state"] == "ACCEPTED"
    events = [e["event"] for e in detail["timeline"]]
    assert "received" in events and "routed" in events and "status.outbound.03" in events
    # a new status moves the state forward; a step back is refused (gateway.business.status_rules)
    for code, answer in (("05", 202), ("06", 202), ("04", 409)):
        resp = await client.post(f"/v1/documents/{doc_id}/status", headers=auth,
                                 json={"agency": D1.organ_id, "status": code})
        assert resp.status == answer, await resp.text()
    await wait_for(lambda: _count(axis, "06", 1), timeout=15)
    assert await db.fetchval("SELECT state FROM documents WHERE id = $1",
                             uuid.UUID(doc_id)) == "DONE"
    # one audit entry per new status, none for the repeated 03 or the refused 04; the chain holds
    reported = await db.fetch("SELECT detail FROM audit_log WHERE action = 'status.reported'"
                              " AND subject = $1 ORDER BY id", str(doc_id))
    assert [r["detail"]["status"] for r in reported] == ["03", "05", "06"]
    assert await audit.verify_chain(db) is None
    # without an axis connection the status is recorded, not queued, and said so
    ref = DocumentRef.from_row(await db.fetchrow("SELECT * FROM documents WHERE id = $1",
                                                 uuid.UUID(doc_id)))
    # the outbox's id sequence, not its row count: the relay deletes rows it has sent meanwhile
    last_id = "SELECT last_value FROM outbox_id_seq"
    queued = await db.fetchval(last_id)
    assert await emit_status(db, ref, agency_code=D1.organ_id, agency_name=None, code="04",
                             description="Đã phân công", axis=None, advance_to="ASSIGNED")
    assert await db.fetchval(last_id) == queued
    assert await db.fetchval("SELECT state FROM documents WHERE id = $1",
                             uuid.UUID(doc_id)) == "DONE"
    assert await db.fetchval("SELECT count(*) FROM document_events WHERE document_id = $1"
                             " AND event = 'status.not_sent'", uuid.UUID(doc_id)) == 1


def _count(axis, code: str, n: int):
    got = [s for s in axis.statuses_for(CITY.organ_id) if s.status_code == code]
    return got if len(got) >= n else None


def _acked(axis, n: int) -> bool:
    return len(axis.acks) >= n


async def _outbox_empty(db) -> bool:
    return await db.fetchval("SELECT count(*) FROM outbox") == 0



async def test_status_from_another_agency_lands_on_our_sent_document(flow_gateway, city_client,
                                                                     db, aiohttp_client):
    import uuid
    from dataclasses import replace
    from datetime import UTC, date, datetime

    from gateway.edxml import Organ, ResponseFor, StatusMessage, build

    ours = uuid.uuid4()
    sent_id = f"{D1.organ_id},2026/11/20,88/UBND-VP"
    await db.execute(
        "INSERT INTO documents (id, direction, dedup_key, edxml_document_id, sender_code, state,"
        " correlation_id) VALUES ($1, 'outbound', $2, $3, $4, 'SENT', 'c-out')",
        ours, f"outbound:{sent_id}", sent_id, D1.organ_id)
    # the city is a receiver of it (a status from any other agency is not attached)
    await db.execute(
        "INSERT INTO outbound_sends (id, document_id, receiver_code, axis, state, edxml_sha256)"
        " VALUES ($1, $2, $3, 'd1', 'SENT', $4)", uuid.uuid4(), ours, CITY.organ_id, "0" * 64)
    status = StatusMessage(
        from_organ=Organ(CITY.organ_id, CITY.name),
        response_for=ResponseFor(D1.organ_id, "88/UBND-VP", date(2026, 11, 20), sent_id),
        status_code="03", description="Đã vào sổ văn bản đến", timestamp=datetime.now(UTC))
    forged = replace(status, response_for=replace(status.response_for, organ_id=OTHER.organ_id),
                     description="khác")
    await city_client.send_status(build(forged), to=[D1.organ_id])
    await city_client.send_status(build(status))
    events = await wait_for(lambda: _status_events(db, ours), timeout=15)
    await wait_for(lambda: _unmatched(db), timeout=15)
    assert len(events) == 1  # the status naming another sender is not put on our document
    assert events[0]["direction"] == "inbound"
    assert events[0]["agency_code"] == CITY.organ_id
    operator = (await create_client(db, name="ops", role="operator")).token
    client = await aiohttp_client(flow_gateway.web_app())
    detail = await (await client.get(f"/v1/documents/{ours}",
                                     headers={"Authorization": f"Bearer {operator}"})).json()
    assert "status.inbound.03" in [e["event"] for e in detail["timeline"]]


async def _unmatched(db) -> bool:
    return await db.fetchval("SELECT count(*) FROM status_events WHERE document_id IS NULL") == 1


async def _status_events(db, doc_id):
    rows = await db.fetch("SELECT * FROM status_events WHERE document_id = $1", doc_id)
    return rows or None


async def test_one_package_per_receiver_with_the_same_document_id(flow_gateway, aiohttp_client,
                                                                 db, pki, axis):
    """Some senders send one package per receiver; the second names another served agency."""
    client = await aiohttp_client(flow_gateway.web_app())
    auth = {"Authorization": f"Bearer {(await create_client(db, name='p', role='axis')).token}"}
    pdf = await signed_pdf(pki, "Cong van tach goi")
    first = edoc(SENDER, [D1], pdf, number=501)
    second = __import__("dataclasses").replace(first, to_organs=(D2,))
    a = await (await client.post("/v1/axis/inbox", data=package(first), headers=auth)).json()
    b = await (await client.post("/v1/axis/inbox", data=package(second), headers=auth)).json()
    assert b["duplicate"] is True and b["document_id"] == a["document_id"]
    again = await (await client.post("/v1/axis/inbox", data=package(second), headers=auth)).json()
    assert again["duplicate"] is True
    rows = await db.fetch("SELECT agency_code FROM deliveries ORDER BY agency_code")
    assert [r["agency_code"] for r in rows] == [D1.organ_id, D2.organ_id]
    await wait_for(lambda: _count(axis, "01", 2), timeout=15)
    assert {s.from_organ for s in _count(axis, "01", 2)} == {D1.organ_id, D2.organ_id}


async def test_a_revoke_arriving_by_two_routes_is_one_action(flow_gateway, aiohttp_client, db,
                                                            pki):
    from dataclasses import replace
    from datetime import UTC, datetime

    from gateway.edxml import Bussiness, BussinessDocType, TraceHeader

    client = await aiohttp_client(flow_gateway.web_app())
    auth = {"Authorization": f"Bearer {(await create_client(db, name='p', role='axis')).token}"}
    pdf = await signed_pdf(pki, "Cong van thu hoi")
    original = edoc(SENDER, [D1], pdf, number=601)
    revoke = replace(original, bussiness=Bussiness(BussinessDocType.REVOKE, original.document_id,
                                                   "Ban hành nhầm"))
    via_b = replace(revoke, trace_headers=(*revoke.trace_headers,
                                           TraceHeader("000.00.00.H00", datetime.now(UTC))))
    for msg in (original, revoke, via_b):
        resp = await client.post("/v1/axis/inbox", data=package(msg), headers=auth)
        assert resp.status == 200, await resp.text()
    kinds = [r["bussiness_doc_type"] for r in await db.fetch(
        "SELECT bussiness_doc_type FROM documents ORDER BY created_at")]
    assert kinds == [0, 1]  # the revoke seen twice (other trace hops) is stored once


async def test_a_value_the_database_cannot_hold_is_rejected_not_retried(flow_gateway,
                                                                       aiohttp_client, db, pki):
    from dataclasses import replace

    from gateway.edxml import OtherInfo

    client = await aiohttp_client(flow_gateway.web_app())
    auth = {"Authorization": f"Bearer {(await create_client(db, name='p', role='axis')).token}"}
    msg = replace(edoc(SENDER, [D1], await signed_pdf(pki, "Do khan"), number=701),
                  other_info=OtherInfo(priority=99_999_999_999))
    resp = await client.post("/v1/axis/inbox", data=package(msg), headers=auth)
    assert resp.status == 422
    assert (await resp.json())["error"]["code"] == "EDXML_VALUE_OUT_OF_RANGE"
    assert await db.fetchval("SELECT state FROM documents") == "REJECTED"


async def test_multipart_push_as_vdxp_sends_it_and_size_limit(database_url, bus_prefix, pki,
                                                              axis, db, aiohttp_client):
    """``file_doc`` part as VDXP's sendEdoc posts it; a part over ``max_document_bytes`` is
    refused with 413 before it is buffered whole, and nothing is stored."""
    import aiohttp

    from gateway.app import Gateway
    from tests.flows.conftest import flow_settings

    pdf = await signed_pdf(pki, "Cong van multipart")
    raw = package(edoc(SENDER, [D1], pdf, number=301))
    gw = Gateway(flow_settings(database_url, bus_prefix, pki, axis,
                               max_document_bytes=len(raw) + 1000))
    await gw.start()
    try:
        client = await aiohttp_client(gw.web_app())
        token = (await create_client(db, name="axis-peer", role="axis")).token
        auth = {"Authorization": f"Bearer {token}"}

        def form(data: bytes) -> aiohttp.FormData:
            f = aiohttp.FormData()
            f.add_field("file_doc", data, filename="doc.edxml",
                        content_type="application/octet-stream")
            return f

        resp = await client.post("/v1/axis/inbox", data=form(raw), headers=auth)
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["state"] == "ROUTED"

        big = raw + b"<!--" + b"x" * 200_000 + b"-->"
        resp = await client.post("/v1/axis/inbox", data=form(big), headers=auth)
        assert resp.status == 413
        assert (await resp.json())["error"]["code"] == "PAYLOAD_TOO_LARGE"
        assert await db.fetchval("SELECT count(*) FROM documents") == 1
    finally:
        await gw.stop()


async def test_parts_are_stored_with_their_document_and_a_race_stores_one(
        flow_gateway, aiohttp_client, db, pki):
    """Attachments (a PDF and a text file, in order) and the PDF's signature report are written
    with the document; two pushes of one package at once store it once and answer alike."""
    from dataclasses import replace

    from gateway.edxml import Attachment

    client = await aiohttp_client(flow_gateway.web_app())
    token = (await create_client(db, name="axis-peer", role="axis")).token
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/xml"}
    msg = edoc(SENDER, [D1], await signed_pdf(pki, "Cong van hai tep"), number=601)
    note = Attachment("ghi-chu", "ghi-chu.txt", "text/plain", "Ghi chú kèm theo".encode(),
                      "Ghi chú")
    raw = package(replace(msg, attachments=(*msg.attachments, note)))
    answers = await asyncio.gather(*(client.post("/v1/axis/inbox", data=raw, headers=auth)
                                     for _ in range(2)))
    bodies = [await r.json() for r in answers]
    assert [r.status for r in answers] == [200, 200], bodies
    assert bodies[0]["document_id"] == bodies[1]["document_id"]
    assert sorted(b["duplicate"] for b in bodies) == [False, True]
    assert await db.fetchval("SELECT count(*) FROM documents") == 1
    assert await db.fetchval("SELECT count(*) FROM deliveries") == 1
    parts = await db.fetch("SELECT id, ordinal, name, size, sha256, data FROM attachments"
                           " ORDER BY ordinal")
    assert [(p["ordinal"], p["name"]) for p in parts] == [(0, msg.attachments[0].name),
                                                          (1, "ghi-chu.txt")]
    assert bytes(parts[1]["data"]) == note.data and parts[1]["size"] == len(note.data)
    assert parts[1]["sha256"] == hashlib.sha256(note.data).hexdigest()
    reports = await db.fetch("SELECT attachment_id, verdict, report FROM signature_reports")
    assert [(r["attachment_id"], r["verdict"]) for r in reports] == [(parts[0]["id"], "valid")]
    assert reports[0]["report"]["signatures"]


async def test_unreadable_attachments_are_attachment_unreadable(flow_gateway, aiohttp_client, db,
                                                                pki, axis):
    """ISO 32000-2 §7.5 (file structure): an attachment taken for a PDF that has no PDF header,
    or whose cross-reference offsets and streams a text conversion broke (LF -> CRLF, latin-1
    read and written as UTF-8), cannot be read: ``ATTACHMENT_UNREADABLE`` (not
    ``SIGNATURE_INVALID``), stored, and answered with a 02 that carries the code and names the
    file to send again."""
    client = await aiohttp_client(flow_gateway.web_app())
    token = (await create_client(db, name="axis-peer", role="axis")).token
    auth = {"Authorization": f"Bearer {token}"}
    pdf = await signed_pdf(pki, "Van ban goc")
    junk = Attachment("junk", "phu-luc.PDF", "application/octet-stream",
                      bytes(range(256)) * 16, "Phụ lục")
    with_junk = edoc(SENDER, [D1], pdf, number=401)
    with_junk = dataclasses.replace(with_junk, attachments=(*with_junk.attachments, junk))
    crlf = edoc(SENDER, [D1], pdf.replace(b"\n", b"\r\n"), number=402)
    recoded = edoc(SENDER, [D1], pdf.decode("latin-1").encode("utf-8"), number=403)
    names = {401: "phu-luc.PDF", 402: "402-UBND-VP.pdf", 403: "403-UBND-VP.pdf"}

    for msg in (with_junk, crlf, recoded):
        resp = await client.post("/v1/axis/inbox", data=package(msg), headers=auth)
        err = (await resp.json())["error"]
        assert resp.status == 422 and err["code"] == "ATTACHMENT_UNREADABLE", err

    rows = await db.fetch("SELECT id, state, reject_code, reject_reason, code_number"
                          " FROM documents ORDER BY code_number")
    assert [(r["state"], r["reject_code"]) for r in rows] == \
        [("REJECTED", "ATTACHMENT_UNREADABLE")] * 3
    for row in rows:
        assert names[int(row["code_number"])] in row["reject_reason"]
        assert "không đọc được" in row["reject_reason"]
    reports = await db.fetch("SELECT s.verdict, s.report FROM signature_reports s"
                             " ORDER BY (s.report->>'error') IS NULL")
    assert [(r["verdict"], (r["report"].get("error") or {}).get("code")) for r in reports] == \
        [("invalid", "PDF_UNREADABLE")] * 3 + [("valid", None)]  # the genuine PDF beside junk
    rejected = await wait_for(lambda: _count(axis, "02", 3), timeout=15)
    assert len(rejected) == 3
    for status in rejected:
        assert status.description.startswith("Từ chối tiếp nhận")
        assert status.description.endswith("[ATTACHMENT_UNREADABLE]")
        assert any(name in status.description for name in names.values())
