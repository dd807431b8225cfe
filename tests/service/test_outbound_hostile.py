"""Hostile and wrong submissions to ``POST /v1/outbound``: every one is a 4xx with a
machine-readable code (naming the field where there is one), never a 5xx, and nothing is
stored or sent. Real PostgreSQL, RabbitMQ, the signing pool and the VDXP simulator."""

from __future__ import annotations

import json

import pytest

from gateway.app import Gateway
from gateway.axis.simulator import AxisSimulator
from gateway.demo.exchange import CITY, DISTRICT1, DISTRICT2
from signing.testpki import build_test_pki
from signing.testpki.pdfs import make_pdf
from signing.testpki.samples import sign_sample
from tests.flows.outbound_kit import form, metadata, sender_settings
from tests.service.signing_client import bearer

D1 = DISTRICT1.organ_id


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return build_test_pki(tmp_path_factory.mktemp("outbound-hostile-pki"))


@pytest.fixture(scope="module")
async def signed(pki) -> bytes:
    return await sign_sample(make_pdf(1, "Cong van"), pki, "officer")


@pytest.fixture
async def axis():
    async with AxisSimulator([CITY, DISTRICT1, DISTRICT2]) as sim:
        yield sim


@pytest.fixture
async def client(database_url, bus_prefix, pki, axis, db, aiohttp_client):
    gw = Gateway(sender_settings(database_url, bus_prefix, pki, axis.base_url, None,
                                 max_document_bytes=512 * 1024))
    await gw.start()
    yield await aiohttp_client(gw.web_app())
    await gw.stop()


@pytest.fixture
async def eoffice(db):
    return await bearer(db, "eoffice", "city", agencies=[CITY.organ_id])


async def _error(resp, status: int) -> dict:
    text = await resp.text()
    assert resp.status == status, text
    return json.loads(text)["error"]


def _raw(meta: dict, filename: bytes, pdf: bytes) -> bytes:
    """A multipart body with the file name's bytes as they are (no client encodes them)."""
    return (b'--B\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n'
            + json.dumps(meta).encode() + b'\r\n--B\r\nContent-Disposition: form-data;'
            b' name="file"; filename="' + filename + b'"\r\nContent-Type: application/pdf'
            b"\r\n\r\n" + pdf + b"\r\n--B--\r\n")


async def test_wrong_metadata_names_the_field(client, eoffice, signed, db):
    files = [("cv.pdf", signed, "application/pdf")]
    cases = [
        ({**metadata([D1], 1), "to": D1}, "METADATA_FIELD_INVALID", "to"),
        ({**metadata([D1], 1), "document_type": "1"}, "METADATA_FIELD_INVALID", "document_type"),
        ({**metadata([D1], 1), "promulgation_date": "2024/13/45"}, "METADATA_FIELD_INVALID",
         "promulgation_date"),
        ({k: v for k, v in metadata([D1], 1).items() if k != "subject"},
         "METADATA_FIELD_MISSING", "subject"),
        ({**metadata([D1], 1), "signer": {}}, "METADATA_FIELD_MISSING", "signer.full_name"),
        ({**metadata([D1], 1), "subject": "a\u202eb"}, "METADATA_FIELD_INVALID", "subject"),
        ({**metadata([D1], 1), "subject": "x" * 2001}, "METADATA_FIELD_INVALID", "subject"),
        ({**metadata([D1, D1], 1)}, "METADATA_FIELD_INVALID", "to"),
        ({**metadata(["has space"], 1)}, "METADATA_FIELD_INVALID", "to[0]"),
        ({**metadata([D1], 1), "unknown": 1}, "METADATA_FIELD_INVALID", "unknown"),
        ({**metadata([D1], 1), "priority": 9}, "METADATA_FIELD_INVALID", "priority"),
    ]
    for meta, code, field in cases:
        err = await _error(await client.post("/v1/outbound", headers=eoffice,
                                             data=form(meta, files)), 422)
        assert (err["code"], err["details"]["field"]) == (code, field), meta
    assert await db.fetchval("SELECT count(*) FROM documents") == 0


async def test_nul_lone_surrogate_and_broken_json_are_400(client, eoffice, signed):
    files = [("cv.pdf", signed, "application/pdf")]
    good = json.dumps(metadata([D1], 1))
    for raw in (good.replace('"subject": "', '"subject": "\\u0000').encode(),
                good.replace('"subject": "', '"subject": "\\ud800').encode(),
                b"\xff\xfe{}", b"[1, 2]", b"{" * 5000, b'{"from": '):
        err = await _error(await client.post("/v1/outbound", headers=eoffice,
                                             data=form(raw, files)), 400)
        assert err["code"] == "INVALID_JSON", raw[:40]


async def test_parts_files_and_sizes(client, eoffice, signed):
    meta = metadata([D1], 1)
    pdf = [("cv.pdf", signed, "application/pdf")]
    for data, status, code in (
            (form(None, pdf), 422, "METADATA_MISSING"),
            (form(meta, []), 422, "FILE_MISSING"),
            (form(meta, [("cv.pdf", b"", "application/pdf")]), 422, "FILE_EMPTY"),
            (form(meta, [("x.pdf", b"<html>not a pdf</html>", "application/pdf")]), 422,
             "MAIN_FILE_NOT_PDF"),
            (form(meta, [("cv.pdf", signed + b"x" * 600_000, "application/pdf")]), 413,
             "PAYLOAD_TOO_LARGE"),
            (form(b"{" + b" " * 300_000 + b"}", pdf), 413, "PAYLOAD_TOO_LARGE")):
        err = await _error(await client.post("/v1/outbound", headers=eoffice, data=data), status)
        assert err["code"] == code
    for name in ("a\u202eb.pdf".encode(), b"x" * 300 + b".pdf", b"../../etc/passwd"):
        resp = await client.post("/v1/outbound", headers={
            **eoffice, "Content-Type": "multipart/form-data; boundary=B"}, data=_raw(meta, name,
                                                                                   signed))
        assert (await _error(resp, 422))["code"] == "FILE_NAME_INVALID", name
    # a control character in a part header is not HTTP (RFC 9110 §5.5): the framing is broken
    resp = await client.post("/v1/outbound", headers={
        **eoffice, "Content-Type": "multipart/form-data; boundary=B"},
        data=_raw(meta, b"a\x1bb.pdf", signed))
    assert (await _error(resp, 400))["code"] == "MULTIPART_INVALID"
    resp = await client.post("/v1/outbound", headers={**eoffice, "Content-Type": "text/plain"},
                             data=b"hello")
    assert (await _error(resp, 415))["code"] == "UNSUPPORTED_MEDIA_TYPE"
    resp = await client.post("/v1/outbound", headers={**eoffice, "Idempotency-Key": "a b"},
                             data=form(meta, pdf))
    assert (await _error(resp, 400))["code"] == "IDEMPOTENCY_KEY_INVALID"


async def test_who_may_send_and_what(client, eoffice, signed, db, pki):
    pdf = [("cv.pdf", signed, "application/pdf")]
    other = await bearer(db, "eoffice", "d1", agencies=[D1])
    resp = await client.post("/v1/outbound", headers=other, data=form(metadata([D1], 1), pdf))
    assert (await _error(resp, 403))["code"] == "AGENCY_FORBIDDEN"  # another agency's from
    officer = await bearer(db, "officer", "o")
    resp = await client.post("/v1/outbound", headers=officer, data=form(metadata([D1], 1), pdf))
    assert (await _error(resp, 403))["code"] == "ROLE_FORBIDDEN"
    for meta, code in (({**metadata([D1], 1), "secret_level": "Mật"}, "DOCUMENT_SECRET"),
                       ({**metadata([D1], 1), "sphere_of_promulgation": "Tối mật"},
                        "DOCUMENT_SECRET"),
                       ({**metadata([D1], 1), "seal": True}, "SEAL_NOT_CONFIGURED")):
        resp = await client.post("/v1/outbound", headers=eoffice, data=form(meta, pdf))
        assert (await _error(resp, 422))["code"] == code
    unsigned = [("cv.pdf", make_pdf(1, "Chua ky"), "application/pdf")]
    resp = await client.post("/v1/outbound", headers=eoffice, data=form(metadata([D1], 1),
                                                                        unsigned))
    assert (await _error(resp, 422))["code"] == "COMPETENT_SIGNATURE_MISSING"
    sealed_only = await sign_sample(make_pdf(1, "Chi co dau"), pki, "seal")
    resp = await client.post("/v1/outbound", headers=eoffice, data=form(
        metadata([D1], 1), [("cv.pdf", sealed_only, "application/pdf")]))
    assert (await _error(resp, 422))["code"] == "COMPETENT_SIGNATURE_MISSING"
    tampered = signed.replace(b"Cong van", b"Cong vam", 1)
    resp = await client.post("/v1/outbound", headers=eoffice, data=form(
        metadata([D1], 1), [("cv.pdf", tampered, "application/pdf")]))
    assert (await _error(resp, 422))["code"] == "SIGNATURE_INVALID"
    assert await db.fetchval("SELECT count(*) FROM documents") == 0
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0


async def test_a_synced_directory_refuses_unknown_receivers_and_odd_codes_warn(
        client, eoffice, signed, db):
    pdf = [("cv.pdf", signed, "application/pdf")]
    resp = await client.post("/v1/outbound", headers=eoffice,
                             data=form(metadata(["vxp.saas.03"], 7), pdf))
    assert resp.status == 202, await resp.text()
    assert [w["code"] for w in (await resp.json())["warnings"]] == ["RECEIVER_CODE_UNUSUAL"]
    await db.execute("INSERT INTO agencies (code, name) VALUES ($1, 'Quận Một')", D1)
    resp = await client.post("/v1/outbound", headers=eoffice,
                             data=form(metadata([D1, "000.00.55.H99"], 8), pdf))
    err = await _error(resp, 422)
    assert err["code"] == "RECEIVER_UNKNOWN" and err["details"]["receivers"] == ["000.00.55.H99"]


async def test_get_is_scoped_to_the_sender(client, eoffice, signed, db):
    resp = await client.post("/v1/outbound", headers=eoffice, data=form(
        metadata([D1], 9), [("cv.pdf", signed, "application/pdf")]))
    doc_id = (await resp.json())["id"]
    other = await bearer(db, "eoffice", "d1", agencies=[D1])
    for headers, status in ((other, 404), (eoffice, 200),
                            (await bearer(db, "operator", "op"), 200)):
        resp = await client.get(f"/v1/outbound/{doc_id}", headers=headers)
        assert resp.status == status, await resp.text()
    for bad in ("not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        resp = await client.get(f"/v1/outbound/{bad}", headers=eoffice)
        assert (await _error(resp, 404))["code"] == "OUTBOUND_NOT_FOUND"
