"""Issue 11 item 8: status reports have bounded fields and follow the status model.

``POST /v1/documents/{id}/status`` refuses over-long or malformed fields (422), moves the status
model does not allow (409 ``STATUS_NOT_ALLOWED``), and answers a repeated code as a duplicate even
with another text; status messages from the axis are bounded the same way and never crash intake.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from gateway.api.auth import create_client
from gateway.business.statuses import record_inbound_status
from gateway.demo.samples import edoc, package, signed_pdf
from gateway.edxml import Bussiness, BussinessDocType, Organ, ResponseFor, StaffInfo, StatusMessage
from tests.flows.conftest import CITY, D1, SENDER

#: The documented limits (gateway.business.statuses.MAX_DESCRIPTION, MAX_STAFF_NAME), spelled
#: out here so that these tests also run (and fail) against code that has none.
MAX_DESCRIPTION = 2000
MAX_STAFF_NAME = 255


pytestmark = pytest.mark.usefixtures("drained_agency_queues")


@pytest.fixture
async def setup(flow_gateway, aiohttp_client, db, pki):
    """A client, an eOffice token for D1 and a function pushing a fresh document to D1."""
    client = await aiohttp_client(flow_gateway.web_app())
    axis = (await create_client(db, name="peer", role="axis")).token
    eoffice = (await create_client(db, name="d1", role="eoffice",
                                   agencies=[D1.organ_id])).token
    pdf = await signed_pdf(pki, "Cong van trang thai")
    numbers = iter(range(900, 999))

    async def push(bussiness: Bussiness | None = None) -> str:
        msg = edoc(SENDER, [D1], pdf, number=next(numbers))
        if bussiness is not None:
            msg = replace(msg, bussiness=bussiness)
        resp = await client.post("/v1/axis/inbox", data=package(msg),
                                 headers={"Authorization": f"Bearer {axis}"})
        assert resp.status == 200, await resp.text()
        return (await resp.json())["document_id"]

    async def report(doc_id: str, code: str, **extra):
        resp = await client.post(f"/v1/documents/{doc_id}/status",
                                 headers={"Authorization": f"Bearer {eoffice}"},
                                 json={"agency": D1.organ_id, "status": code, **extra})
        return resp.status, await resp.json()

    return push, report


async def _outbound(db, doc_id: str) -> list[tuple[str, str]]:
    rows = await db.fetch("SELECT status_code, description FROM status_events WHERE"
                          " document_id = $1 AND direction = 'outbound' AND status_code <> '01'"
                          " ORDER BY id", uuid.UUID(doc_id))
    return [(r["status_code"], r["description"]) for r in rows]


async def test_fields_are_bounded_and_clean(setup, db):
    push, report = setup
    doc = await push()
    cases = [
        ({"description": "x" * (MAX_DESCRIPTION + 1)}, 422, "STATUS_FIELD_TOO_LONG"),
        ({"description": "x" * (20 * 1024 * 1024)}, 413, "PAYLOAD_TOO_LARGE"),
        ({"staff": {"Staff": "N" * (MAX_STAFF_NAME + 1)}}, 422, "STATUS_FIELD_TOO_LONG"),
        ({"staff": {"Department": "D" * (MAX_STAFF_NAME + 1)}}, 422, "STATUS_FIELD_TOO_LONG"),
        ({"staff": {"Email": "a" * 250 + "@x.vn"}}, 422, "STATUS_FIELD_TOO_LONG"),
        ({"staff": {"Email": "not an address"}}, 422, "STATUS_FIELD_INVALID"),
        ({"staff": {"Mobile": "call me maybe"}}, 422, "STATUS_FIELD_INVALID"),
        ({"staff": {"Mobile": "0" * 40}}, 422, "STATUS_FIELD_TOO_LONG"),
        ({"staff": {"Nickname": "x"}}, 422, "STATUS_FIELD_INVALID"),
        # a lone surrogate anywhere cannot be stored: refused with the JSON (and its path)
        ({"staff": {"Nick\ud800": "x"}}, 400, "INVALID_JSON"),
        ({"description": "bad \ud800 half"}, 400, "INVALID_JSON"),
        ({"description": "bell \x07 inside"}, 422, "STATUS_FIELD_INVALID"),
        ({"description": "escape \x1b[31m"}, 422, "STATUS_FIELD_INVALID"),
        ({"staff": {"Staff": "two\nlines"}}, 422, "STATUS_FIELD_INVALID"),
        ({"agency": "half \udc00 agency"}, 400, "INVALID_JSON"),
        ({"agency": "000.00.09.H99"}, 403, "AGENCY_FORBIDDEN"),
        ({"status": "0\ud8003"}, 400, "INVALID_JSON"),
    ]
    for extra, status, code in cases:
        got, body = await report(doc, "03", **extra)
        assert (got, body["error"]["code"]) == (status, code), (extra.keys(), body)
    assert await _outbound(db, doc) == []
    # the limits themselves are allowed; a reason may span lines
    got, body = await report(doc, "02", description="Sai địa chỉ\nđề nghị gửi lại\t(1)"
                             + "x" * (MAX_DESCRIPTION - 40),
                             staff={"Staff": "N" * MAX_STAFF_NAME, "Email": "van.thu@d1.gov.vn",
                                    "Mobile": "+84 (24) 3823-1234", "Department": "Văn thư"})
    assert got == 202, body

    from gateway.business import statuses

    assert (getattr(statuses, "MAX_DESCRIPTION", None),
            getattr(statuses, "MAX_STAFF_NAME", None)) == (MAX_DESCRIPTION, MAX_STAFF_NAME)


async def test_the_same_code_with_another_text_is_the_same_status(setup, db):
    push, report = setup
    doc = await push()
    first = await report(doc, "03", description="Đã vào sổ")
    again = await report(doc, "03", description="Đã vào sổ (lần 2)")
    assert first[0] == 202 and first[1]["duplicate"] is False
    assert again == (200, {**first[1], "duplicate": True})
    assert await _outbound(db, doc) == [("03", "Đã vào sổ")]
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'status.reported'"
                             " AND subject = $1", doc) == 1


async def test_moves_the_status_model_does_not_allow_are_refused(setup, db):
    push, report = setup
    doc = await push()
    got, body = await report(doc, "04")  # assigned before it was accepted
    assert (got, body["error"]["code"]) == (409, "STATUS_NOT_ALLOWED")
    assert body["error"]["details"]["allowed"] == ["02", "03"]
    for code in ("03", "05"):
        assert (await report(doc, code))[0] == 202
    for code, extra in (("02", {"description": "Trả lại"}), ("04", {}), ("03", {})):
        got, body = await report(doc, code, **extra)
        if code == "03":  # already reported: the same answer, not an error
            assert (got, body["duplicate"]) == (200, True)
            continue
        assert (got, body["error"]["code"]) == (409, "STATUS_NOT_ALLOWED"), (code, body)
        assert body["error"]["details"]["reported"] == ["01", "03", "05"]
    assert (await report(doc, "06"))[0] == 202
    assert [c for c, _ in await _outbound(db, doc)] == ["03", "05", "06"]

    returned = await push()
    assert (await report(returned, "02", description="Không đúng thẩm quyền"))[0] == 202
    for code in ("03", "06"):  # a returned document stays returned
        got, body = await report(returned, code)
        assert (got, body["error"]["code"]) == (409, "STATUS_NOT_ALLOWED"), (code, body)


async def test_take_back_answers_need_a_request(setup, db):
    push, report = setup
    plain = await push()
    for code in ("15", "16"):
        got, body = await report(plain, code, description="Đồng ý")
        assert (got, body["error"]["code"]) == (409, "STATUS_NOT_ALLOWED"), (code, body)
    # a revoke is a request: it gets one answer, never both (it names a document the same
    # sender sent: a revoke of an unknown one is held for an operator, issue 13)
    named = await db.fetchval("SELECT edxml_document_id FROM documents WHERE id = $1",
                              uuid.UUID(plain))
    revoke = await push(Bussiness(BussinessDocType.REVOKE, named, "Ban hành nhầm"))
    assert (await report(revoke, "15"))[0] == 202
    got, body = await report(revoke, "16", description="Không đồng ý")
    assert (got, body["error"]["code"]) == (409, "STATUS_NOT_ALLOWED")
    assert (await report(revoke, "15", description="Đồng ý lần nữa"))[0] == 200


async def test_inbound_status_fields_are_bounded_never_crash(flow_gateway, db):
    ours = uuid.uuid4()
    sent_id = f"{D1.organ_id},2026/11/21,89/UBND-VP"
    await db.execute(
        "INSERT INTO documents (id, direction, dedup_key, edxml_document_id, sender_code, state,"
        " correlation_id) VALUES ($1, 'outbound', $2, $3, $4, 'SENT', 'c-out')",
        ours, f"outbound:{sent_id}", sent_id, D1.organ_id)
    base = StatusMessage(
        from_organ=Organ(CITY.organ_id, CITY.name),
        response_for=ResponseFor(D1.organ_id, "89/UBND-VP", None, sent_id),
        status_code="03", description="y" * 50_000, timestamp=datetime.now(UTC),
        staff_info=StaffInfo(department="D" * 5000, staff="S\x00\x07" + "s" * 5000,
                             email="e" * 5000, mobile="9" * 5000))
    assert await record_inbound_status(db, base) == ours
    row = await db.fetchrow("SELECT description, staff FROM status_events"
                            " WHERE document_id = $1", ours)
    assert len(row["description"]) <= MAX_DESCRIPTION
    assert row["description"].startswith("yyy") and "50000" in row["description"]
    assert all(len(v) <= MAX_STAFF_NAME for v in row["staff"].values())
    assert "\x00" not in row["staff"]["Staff"] and "\x07" not in row["staff"]["Staff"]
    # a lone surrogate (never from a parser, but from any other caller) is no crash either;
    # the same code again with another text is the same status
    odd = replace(base, description="half \ud800 surrogate", staff_info=None,
                  timestamp=datetime.now(UTC))
    assert await record_inbound_status(db, odd) == ours
    assert await db.fetchval("SELECT count(*) FROM status_events WHERE document_id = $1",
                             ours) == 1
    worse = replace(odd, status_code="05")
    assert await record_inbound_status(db, worse) == ours
    assert await db.fetchval("SELECT description FROM status_events WHERE document_id = $1"
                             " AND status_code = '05'", ours) == "half \ufffd surrogate"
