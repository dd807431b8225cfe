"""Malformed packages over the axis (issue 11 items 10-12), with the VDXP simulator, the real
database and broker: a readable sender is answered with a 02, a refused item is fetched once
even when the axis keeps listing it, and a failing item backs off on its own."""

from __future__ import annotations

import asyncio
import base64
import io
import re
import zipfile

import pytest

from gateway.api.auth import create_client
from gateway.demo.samples import edoc, malformed_package, package, signed_pdf
from signing.testpki.pdfs import make_pdf
from tests.conftest import wait_for
from tests.flows.conftest import CITY, D1, SENDER

_CTE = re.compile(rb"(<edXML:ContentTransferEncoded>)([^<]*)(</edXML:ContentTransferEncoded>)")


def _good(number: int) -> bytes:
    return package(edoc(SENDER, [D1], make_pdf(1, f"van ban {number}"), number=number))


def _payload_replaced(raw: bytes, change) -> bytes:
    return _CTE.sub(lambda m: m.group(1) + change(m.group(2)) + m.group(3), raw, count=1)


def _zip_bomb() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.pdf", bytes(4 * 1024 * 1024))  # ratio ~1000, over the default 100
    return base64.b64encode(buf.getvalue())


def _not_well_formed_after_header(n: int) -> bytes:
    return _good(n).replace(b"</AttachmentEncoded>", b"</AttachmentEncodedX>")


def _junk_payload(n: int) -> bytes:
    return _payload_replaced(_good(n), lambda p: b"****" + p[4:])


def _damaged_zip_payload(n: int) -> bytes:
    return _payload_replaced(_good(n), lambda p: b"AAAA" + p[4:])


def _with_doctype(n: int) -> bytes:
    raw = _good(n)
    start = raw.index(b"<edXML ")
    return raw[:start] + b'<!DOCTYPE edXML [<!ENTITY x "y">]>\n' + raw[start:]


def _over_a_limit(n: int) -> bytes:
    return _payload_replaced(_good(n), lambda p: _zip_bomb())


CASES = [
    (_not_well_formed_after_header, "EDXML_NOT_WELL_FORMED"),
    (_junk_payload, "EDXML_BAD_PAYLOAD"),
    (_damaged_zip_payload, "EDXML_BAD_PAYLOAD"),
    (_with_doctype, "EDXML_DTD_FORBIDDEN"),
    (_over_a_limit, "EDXML_ZIP_RATIO"),
]


@pytest.mark.parametrize(("make", "code"), CASES, ids=[c[1] + ":" + c[0].__name__ for c in CASES])
async def test_readable_sender_of_a_malformed_package_gets_a_02(flow_gateway, axis, db, make,
                                                                code):
    """Item 12: whenever the sender OrganId and DocumentId can be read safely, the sender gets a
    02 with the machine code from the receiving district, through the outbox and the axis —
    also for refusals (syntax after the header, DOCTYPE, limits) the old salvage skipped."""
    raw = make(900)
    axis.post_document(raw, from_organ=CITY.organ_id, to=[D1.organ_id])
    got = await wait_for(lambda: [s for s in axis.statuses_for(CITY.organ_id)
                                  if s.status_code == "02"], timeout=15)
    assert len(got) == 1
    status = got[0]
    assert status.from_organ == D1.organ_id
    assert status.description.startswith("Từ chối tiếp nhận")
    assert status.description.endswith(f"[{code}]")
    assert status.response_for_organ == CITY.organ_id
    row = await db.fetchrow("SELECT state, reject_code, edxml_document_id FROM documents")
    assert row["state"] == "REJECTED" and row["reject_code"] == code
    assert row["edxml_document_id"] == status.response_for_document_id
    assert {a.status for a in axis.acks} == {"fail"}
    assert await db.fetchval("SELECT count(*) FROM deliveries") == 0  # nothing routed


async def test_unreadable_header_gets_no_02_but_is_refused(flow_gateway, axis, db):
    """The sender's DocumentId is cut off (not well-formed inside the header): no 02 is made
    up; the package is refused and the axis told ``fail``."""
    raw = _good(901)
    raw = raw[:raw.index(b"<edXML:DocumentId>") + 20]
    axis.post_document(raw, from_organ=CITY.organ_id, to=[D1.organ_id])
    await wait_for(lambda: axis.acks, timeout=15)
    assert axis.acks[0].status == "fail"
    assert await db.fetchval("SELECT reject_code FROM documents") == "EDXML_NOT_WELL_FORMED"
    await asyncio.sleep(0.5)
    assert not axis.statuses_for(CITY.organ_id)


async def test_refused_item_is_fetched_once_and_shown_to_operators(flow_gateway, axis, db,
                                                                  aiohttp_client):
    """Item 11: an axis that keeps listing an item marked ``fail`` does not make the gateway
    download and parse it on every poll; the poller treats it as nothing new; operators see it."""
    axis.faults.keep_failed = True
    sub = axis.post_document(malformed_package(SENDER, D1, 902), to=[D1.organ_id])
    doc_id = sub.deliveries[D1.organ_id]
    await wait_for(lambda: db.fetchval("SELECT count(*) FROM axis_refused"), timeout=15)
    fetched = axis.call_count("getEdoc")
    await asyncio.sleep(1.5)  # ~15 rounds at poll_interval 0.1
    assert axis.call_count("getEdoc") == fetched == 1
    assert axis.pending(D1.organ_id)  # the axis still lists it
    assert flow_gateway.pollers["d1"].listed == 0  # nothing new: the idle back-off may start
    row = await db.fetchrow("SELECT * FROM axis_refused")
    assert row["axis"] == "d1" and row["code"] == "EDXML_MISSING_ELEMENT" and row["acked"]
    assert row["seen_count"] >= 5 and row["message_type"] == "edoc"
    assert len(row["sha256"]) == 64
    assert row["axis_doc_id"] == doc_id
    # the 02 went out once, not once per listing
    await wait_for(lambda: [s for s in axis.statuses_for(CITY.organ_id)
                            if s.status_code == "02"], timeout=15)
    assert await db.fetchval("SELECT count(*) FROM documents") == 1

    client = await aiohttp_client(flow_gateway.web_app())
    operator = (await create_client(db, name="op", role="operator")).token
    eoffice = (await create_client(db, name="eo", role="eoffice",
                                   agencies=[D1.organ_id])).token
    resp = await client.get("/v1/axis/refused", headers={"Authorization": f"Bearer {operator}"})
    body = await resp.json()
    assert resp.status == 200, body
    [item] = body["refused"]
    assert item["axis_doc_id"] == row["axis_doc_id"] and item["code"] == "EDXML_MISSING_ELEMENT"
    assert item["seen_count"] >= 5 and item["document_id"]
    resp = await client.get("/v1/axis/refused", headers={"Authorization": f"Bearer {eoffice}"})
    assert resp.status == 403
    for query in ("?limit=0", "?limit=x", "?limit=-1", "?axis=nope"):
        resp = await client.get("/v1/axis/refused" + query,
                                headers={"Authorization": f"Bearer {operator}"})
        assert resp.status == 400, query
        assert (await resp.json())["error"]["code"] == "INVALID_QUERY"


async def test_failing_item_backs_off_on_its_own(flow_gateway, axis, db, pki):
    """Item 11: an item whose download keeps failing is retried with its own back-off, not on
    every poll; once the axis serves it again it is taken in."""
    raw = package(edoc(SENDER, [D1], await signed_pdf(pki, "Tam loi"), number=903))
    axis.faults.garble_next(10_000, operation="getEdoc")
    axis.post_document(raw)
    await wait_for(lambda: axis.call_count("getEdoc"), timeout=10)
    await asyncio.sleep(1.6)  # 16 rounds at poll_interval 0.1
    assert axis.call_count("getEdoc") <= 5
    axis.faults.reset()
    await wait_for(lambda: [a for a in axis.acks if a.status == "done"], timeout=10)
    assert await db.fetchval("SELECT state FROM documents") == "ROUTED"


def test_salvage_reads_no_entity_and_nothing_past_its_bound():
    """The header is read without expanding entities: a value holding an entity reference is
    unreadable (no 02 from it) while the other values still are; a billion-laughs DTD is
    refused by the parser, quickly, and nothing is read; a header that ends past the bound is
    not read at all."""
    import time

    from gateway import edxml
    from gateway.inbound.rules import SALVAGE_BYTES, salvage

    def facts_of(raw: bytes) -> dict:
        with pytest.raises(edxml.EdxmlError) as exc:
            edxml.parse(raw)
        return salvage(raw, exc.value)

    sender = b"<edXML:OrganId>000.00.00.H99</edXML:OrganId>"
    entity = _with_doctype(904).replace(sender, b"<edXML:OrganId>&x;</edXML:OrganId>", 1)
    facts = facts_of(entity)
    assert facts["sender"] == "" and facts["document_id"].endswith("904/UBND-VP")

    laughs = b"".join(b'<!ENTITY l%d "%s">' % (i, b"&l%d;" % (i - 1) * 10) for i in range(1, 10))
    bomb = _with_doctype(904).replace(b'<!ENTITY x "y">', b'<!ENTITY l0 "lol">' + laughs)
    bomb = bomb.replace(sender, b"<edXML:OrganId>&l9;</edXML:OrganId>", 1)
    started = time.perf_counter()
    assert facts_of(bomb) == {}
    assert time.perf_counter() - started < 1.0

    good = _good(905)
    at = good.index(b"</edXML:Subject>")
    padded = good[:at] + b" " * SALVAGE_BYTES + good[at:]
    assert salvage(padded, edxml.EdxmlError(None, "x")) == {}
