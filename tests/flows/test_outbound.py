"""Sending (issue 13, "Send", "No double send", "Tracking"): the city's eOffice submits
documents through ``POST /v1/outbound``; the gateway seals them with the agency key on SoftHSM
and sends one copy per receiver to the VDXP simulator.

Real PostgreSQL, RabbitMQ, SoftHSM, signing pool processes and the simulator over HTTP."""

from __future__ import annotations

import pytest

from gateway.app import Gateway
from gateway.axis import MessageType
from gateway.axis.simulator import AxisSimulator
from gateway.demo.exchange import CITY, DISTRICT1, DISTRICT2
from signing.testpki.pdfs import make_pdf
from signing.testpki.softhsm import init_softhsm_token_in_child, softhsm_available
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

pytestmark = pytest.mark.skipif(not softhsm_available(), reason="SoftHSM2 not installed")
D1, D2 = DISTRICT1.organ_id, DISTRICT2.organ_id


@pytest.fixture(scope="module")
def token(pki, tmp_path_factory):
    """The agency's seal on a SoftHSM token made in a child process (this test process never
    loads the PKCS#11 module: other tests of the run use their own token); the signing pool's
    workers find it through ``SOFTHSM2_CONF``, set for this module only."""
    tok = init_softhsm_token_in_child(tmp_path_factory.mktemp("outbound-hsm"), pki,
                                      certs=("seal",))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOFTHSM2_CONF", str(tok.conf))
        yield tok


@pytest.fixture(scope="module")
def keys(pki, token, tmp_path_factory):
    return write_keys(tmp_path_factory.mktemp("outbound-keys"), pki, token)


@pytest.fixture
async def axis():
    async with AxisSimulator([CITY, DISTRICT1, DISTRICT2, OTHER]) as sim:
        yield sim


@pytest.fixture
async def gw(database_url, bus_prefix, pki, axis, keys, db):
    gateway = Gateway(sender_settings(database_url, bus_prefix, pki, axis.base_url, keys,
                                      seal=True))
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


async def _submit(client, headers, meta, files, key: str | None = None):
    extra = {"Idempotency-Key": key} if key else {}
    return await client.post("/v1/outbound", headers={**headers, **extra},
                             data=form(meta, files))


async def _settled(client, headers, doc_id: str) -> dict | None:
    resp = await client.get(f"/v1/outbound/{doc_id}", headers=headers)
    assert resp.status == 200, await resp.text()
    doc = await resp.json()
    return doc if doc["state"] != "QUEUED" else None


async def test_sealed_on_softhsm_and_sent_once_to_each_receiver(client, gw, axis, eoffice,
                                                                officer):
    """Agency seal with the number and date on the main PDF, the attachment signature on the
    second PDF, one copy per receiver with its own DocId; every signature valid."""
    main = await signed_by_officer(client, officer, "Bao cao gui len thanh pho")
    appendix = make_pdf(1, "Phu luc so lieu")
    resp = await _submit(client, eoffice, metadata([D1, D2], 101), [
        ("bao-cao.pdf", main, "application/pdf"), ("phu-luc.pdf", appendix, "application/pdf"),
        ("bang-so-lieu.xlsx", b"PK\x03\x04 not really a workbook", "application/vnd.ms-excel")])
    assert resp.status == 202, await resp.text()
    body = await resp.json()
    assert body["state"] == "QUEUED" and body["sealed"] is True
    assert body["document_id"] == f"{CITY.organ_id},2024/03/01,101/UBND-VP"
    assert [(r["code"], r["state"]) for r in body["receivers"]] == [(D1, "QUEUED"),
                                                                    (D2, "QUEUED")]
    doc = await wait_for(lambda: _settled(client, eoffice, body["id"]), timeout=30)
    assert doc["state"] == "SENT"
    sends = {r["receiver"]: r for r in doc["receivers"]}
    assert {r: s["state"] for r, s in sends.items()} == {D1: "SENT", D2: "SENT"}
    assert sends[D1]["axis_doc_id"] != sends[D2]["axis_doc_id"]
    assert all(s["attempts"] == 1 for s in sends.values())
    events = [e["event"] for e in doc["timeline"]]
    assert events[:2] == ["outbound.submitted", "outbound.sealed"]
    assert events.count("send.sent") == 2
    for receiver in (D1, D2):
        copies = axis.sent_to(receiver, MessageType.EDOC)
        assert len(copies) == 1
        assert copies[0].sender_doc_id == sends[receiver]["axis_doc_id"]
        msg = copies[0].parsed()
        assert msg.document_id == body["document_id"]
        assert [a.name for a in msg.attachments] == ["bao-cao.pdf", "phu-luc.pdf",
                                                     "bang-so-lieu.xlsx"]
        sealed = (await gw.judge.pool.verify(msg.attachments[0].data, gw.judge.policy))
        assert sealed.verdict.value == "valid", sealed.summary_vi
        assert [s.role.value for s in sealed.signatures] == ["competent_person", "agency"]
        attached = await gw.judge.pool.verify(msg.attachments[1].data, gw.judge.policy)
        assert attached.verdict.value == "valid" and attached.signature_count == 1
        assert msg.attachments[2].data == b"PK\x03\x04 not really a workbook"


async def test_an_axis_outage_is_retried_and_exactly_one_copy_arrives(client, gw, axis,
                                                                      eoffice, officer):
    """Refused connections (HTTP 503, retried by the client and then by the relay with
    backoff) and a lost answer after the axis took the package (never re-sent blindly: the
    relay finds the copy by its hash and adopts its DocId)."""
    main = await signed_by_officer(client, officer, "Van ban trong luc truc gian doan")
    axis.faults.fail_next(6, status=503, operation="sendEdoc")
    axis.faults.drop_next(1, after_processing=True, operation="sendEdoc")
    resp = await _submit(client, eoffice, metadata([D1], 102, seal=False),
                         [("cv.pdf", main, "application/pdf")])
    assert resp.status == 202, await resp.text()
    doc_id = (await resp.json())["id"]
    doc = await wait_for(lambda: _settled(client, eoffice, doc_id), timeout=40)
    assert doc["state"] == "SENT"
    send = doc["receivers"][0]
    copies = axis.sent_to(D1, MessageType.EDOC)
    assert len(copies) == 1 and send["axis_doc_id"] == copies[0].sender_doc_id
    assert send["attempts"] >= 2
    assert "send.reconciled" in [e["event"] for e in doc["timeline"]]
    assert axis.faults.injected["fail"] == 6 and axis.faults.injected["drop_after"] == 1


async def test_a_bad_receiver_fails_alone_and_later_documents_go(client, gw, axis, eoffice,
                                                                 officer, db):
    """The axis refuses an unknown receiver (ErrorCode 422): that copy is FAILED with the
    axis's code and text and leaves the outbox; the other receiver gets its copy, and a later
    document is not held back."""
    main = await signed_by_officer(client, officer, "Gui mot noi khong ton tai")
    unknown = "000.00.77.H99"
    resp = await _submit(client, eoffice, metadata([unknown, D1], 103, seal=False),
                         [("cv.pdf", main, "application/pdf")])
    assert resp.status == 202, await resp.text()
    first = (await resp.json())["id"]
    resp = await _submit(client, eoffice, metadata([D2], 104, seal=False),
                         [("cv.pdf", main, "application/pdf")])
    assert resp.status == 202, await resp.text()
    later = (await resp.json())["id"]
    doc = await wait_for(lambda: _settled(client, eoffice, first), timeout=30)
    assert doc["state"] == "PARTLY_FAILED"
    sends = {r["receiver"]: r for r in doc["receivers"]}
    assert sends[D1]["state"] == "SENT"
    bad = sends[unknown]
    assert bad["state"] == "FAILED" and bad["error_code"] == "422"
    assert "unknown receiver" in bad["error_desc"] and bad["attempts"] == 1
    assert (await wait_for(lambda: _settled(client, eoffice, later), timeout=30))["state"] \
        == "SENT"
    assert len(axis.sent_to(D1)) == 1 and len(axis.sent_to(D2)) == 1
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0
    failed = [e for e in doc["timeline"] if e["event"] == "send.failed"]
    assert failed[0]["agency_code"] == unknown and failed[0]["detail"]["error_code"] == "422"


async def test_a_repeated_submission_answers_the_first_and_sends_nothing_more(
        client, gw, axis, eoffice, officer):
    main = await signed_by_officer(client, officer, "Gui lai cung mot van ban")
    files = [("cv.pdf", main, "application/pdf")]
    meta = metadata([D1], 105, seal=False)
    first = await _submit(client, eoffice, meta, files, key="eoffice-req-105")
    assert first.status == 202, await first.text()
    body = await first.json()
    await wait_for(lambda: _settled(client, eoffice, body["id"]), timeout=30)
    again = await _submit(client, eoffice, meta, files, key="eoffice-req-105")
    assert again.status == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert (await again.json())["id"] == body["id"]
    # the same key with another body
    other = await _submit(client, eoffice, {**meta, "subject": "Khác"}, files,
                          key="eoffice-req-105")
    assert other.status == 409
    assert (await other.json())["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    # the same DocumentId under another key (here: none) is another submission: refused
    bare = await _submit(client, eoffice, meta, files)
    assert bare.status == 409 and (await bare.json())["error"]["code"] == "DOCUMENT_ID_EXISTS"
    # without a key, the DocumentId is the key: a repeat answers the first result
    meta2 = metadata([D2], 106, seal=False)
    first2 = await _submit(client, eoffice, meta2, files)
    again2 = await _submit(client, eoffice, meta2, files)
    assert first2.status == again2.status == 202
    assert (await again2.json())["id"] == (await first2.json())["id"]
    other2 = await _submit(client, eoffice, {**meta2, "subject": "Khác"}, files)
    assert other2.status == 409
    assert (await other2.json())["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    second_id = (await first2.json())["id"]
    await wait_for(lambda: _settled(client, eoffice, second_id), timeout=30)
    assert len(axis.sent_to(D1)) == 1 and len(axis.sent_to(D2)) == 1
