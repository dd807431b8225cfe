"""``POST /v1/sign`` and ``POST /v1/verify``: key scope, audit, rate limits, errors.

Real PostgreSQL, RabbitMQ, test PKI and signing pool processes; a gateway of its own per test
with a key file (officer-a: competent person, seal: agency) in a module folder.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
from urllib.parse import urlsplit

import pytest

from gateway.api.ratelimit import SignRateLimits, TokenBuckets
from gateway.db import audit
from signing.testpki import build_test_pki
from signing.testpki.pdfs import make_pdf
from tests.conftest import make_settings
from tests.flows.conftest import crl_cache
from tests.service.signing_client import bearer, error_code, pdf_form


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return build_test_pki(tmp_path_factory.mktemp("sign-api-pki"), arch="gov-rsa")


def _write_keys(folder, pki, extra: str = ""):
    (folder / "p12.pass").write_bytes(pki.p12_passphrase + b"\n")
    path = folder / "keys.toml"
    path.write_text(
        f'[keys.officer-a]\nrole = "competent_person"\nowner = "Nguyễn Văn A"\n'
        f'path = "{pki.p12("officer")}"\npassphrase_file = "p12.pass"\n\n'
        f'[keys.seal]\nrole = "agency"\nowner = "000.00.01.H99"\n'
        f'path = "{pki.p12("seal")}"\npassphrase_file = "p12.pass"\n\n' + extra,
        encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def keys_file(pki, tmp_path_factory):
    return _write_keys(tmp_path_factory.mktemp("sign-api-keys"), pki)


def _settings(database_url, bus_prefix, pki, keys_file, **signing):
    return make_settings(database_url, bus_prefix, signing={
        "keys_file": str(keys_file), "trust_bundles": [str(pki.trust_bundle_path)],
        "offline": True, "workers": 1, "revocation_cache_dir": str(crl_cache(pki)),
        "crl_refresh_interval": 0, **signing}, max_document_bytes=2 * 1024 * 1024)


@pytest.fixture(scope="module")
def pdf() -> bytes:
    return make_pdf(1, "Công văn thử nghiệm")


@pytest.fixture
async def sign_gw(database_url, bus_prefix, db, pki, keys_file):
    from gateway.app import Gateway

    gw = Gateway(_settings(database_url, bus_prefix, pki, keys_file))
    await gw.start()
    yield gw
    await gw.stop()


@pytest.fixture
async def sign_client(sign_gw, aiohttp_client):
    return await aiohttp_client(sign_gw.web_app())


async def _auth(db, role: str, **kw) -> dict[str, str]:
    return await bearer(db, role, f"{role}-sign-test", **kw)


_form = pdf_form


_error = error_code


async def test_officer_signs_with_own_key_audited_and_verifies(sign_gw, sign_client, db, pdf):
    officer = await _auth(db, "officer", key_aliases=["officer-a"])
    resp = await sign_client.post("/v1/sign", headers=officer, data=_form(
        pdf, key="officer-a", role="competent_person", signer_name="Nguyễn Văn A",
        position="CHỦ TỊCH", reason="Ban hành"))
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/pdf"
    signed = await resp.read()
    assert resp.headers["X-Signed-SHA256"] == hashlib.sha256(signed).hexdigest()
    assert resp.headers["X-Signature-Field"] == "CompetentPerson"

    row = await db.fetchrow("SELECT * FROM audit_log WHERE id = $1",
                            int(resp.headers["X-Audit-Id"]))
    assert (row["action"], row["subject"]) == ("pdf.sign", "officer-a")
    assert row["actor"] == "officer:officer-sign-test"
    detail = row["detail"]
    assert detail["input_sha256"] == hashlib.sha256(pdf).hexdigest()
    assert detail["output_sha256"] == resp.headers["X-Signed-SHA256"]
    assert (detail["role"], detail["level"], detail["field"]) == (
        "competent_person", "B-B", "CompetentPerson")
    assert "Nguyễn Văn A" in detail["signer_subject"] and detail["signing_time"]
    assert await audit.verify_chain(db) is None

    resp = await sign_client.post(
        "/v1/verify", headers={**officer, "Content-Type": "application/pdf"}, data=signed)
    assert resp.status == 200, await resp.text()
    report = await resp.json()
    assert report["verdict"] == "valid", report
    assert report["sha256"] == _sha(signed)
    assert [s["field"] for s in report["signatures"]] == ["CompetentPerson"]
    assert "etsi_xml" not in report["signatures"][0]

    eoffice = await _auth(db, "eoffice", agencies=["000.00.01.H99"])
    resp = await sign_client.post("/v1/verify", headers=eoffice, data=_form(signed),
                                  params={"etsi": "1"})
    assert resp.status == 200, await resp.text()
    assert "<" in (await resp.json())["signatures"][0]["etsi_xml"]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("where", ["settings", "key-file"])
async def test_b_t_with_the_configured_tsa(where, database_url, bus_prefix, db, pki, pdf,
                                           tmp_path, aiohttp_server, aiohttp_client):
    """The TSA is ``signing.tsa_url`` (validated settings); the key file's older
    ``[services]`` table still works."""
    from certomancer.integrations.aiohttp_illusionist import AsyncIllusionist

    from gateway.app import Gateway

    pki_server = await aiohttp_server(AsyncIllusionist(pki.arch).build_app())
    tsa_url = f"http://127.0.0.1:{pki_server.port}{urlsplit(pki.tsa_url).path}"
    if where == "settings":
        keys = _write_keys(tmp_path, pki)
        settings = _settings(database_url, bus_prefix, pki, keys, tsa_url=tsa_url,
                             tsa_timeout=20)
    else:
        keys = _write_keys(tmp_path, pki, f'[services]\ntsa_url = "{tsa_url}"\ntimeout = 20\n')
        settings = _settings(database_url, bus_prefix, pki, keys)
    gw = Gateway(settings)
    await gw.start()
    try:
        client = await aiohttp_client(gw.web_app())
        officer = await _auth(db, "officer", key_aliases=["officer-a"])
        resp = await client.post("/v1/sign", headers=officer, data=_form(
            pdf, key="officer-a", role="competent_person", level="B-T"))
        assert resp.status == 200, await resp.text()
        resp = await client.post("/v1/verify", headers=officer, data=_form(await resp.read()))
        report = await resp.json()
        assert report["verdict"] == "valid", report
        assert report["signatures"][0]["pades_level"] == "B-T"
        await client.close()
    finally:
        await gw.stop()


async def test_b_t_without_a_tsa_is_refused(sign_gw, sign_client, db, pdf):
    officer = await _auth(db, "officer", key_aliases=["officer-a"])
    resp = await sign_client.post("/v1/sign", headers=officer, data=_form(
        pdf, key="officer-a", role="competent_person", level="B-T"))
    assert resp.status == 422 and await _error(resp) == "SIGN_NO_TSA"


async def test_raw_body_with_query_parameters(sign_gw, sign_client, db, pdf):
    admin = await _auth(db, "admin")
    resp = await sign_client.post(
        "/v1/sign", headers={**admin, "Content-Type": "application/pdf"}, data=pdf,
        params={"key": "seal", "role": "attachment", "number": "12/UBND-VP"})
    assert resp.status == 200, await resp.text()
    assert resp.headers["X-Signature-Field"] == "AgencyAttachment"
    row = await db.fetchrow("SELECT detail FROM audit_log WHERE action = 'pdf.sign'")
    assert row["detail"]["number"] == "12/UBND-VP"


async def test_tokens_roles_and_key_scope(sign_gw, sign_client, db, pdf):
    officer = await _auth(db, "officer", key_aliases=["officer-a", "seal"])
    eoffice = await _auth(db, "eoffice", agencies=["000.00.01.H99"])
    admin = await _auth(db, "admin")
    form = {"key": "officer-a", "role": "competent_person"}

    resp = await sign_client.post("/v1/sign", data=_form(pdf, **form))
    assert resp.status == 401 and await _error(resp) == "AUTH_REQUIRED"
    resp = await sign_client.post("/v1/sign", headers=eoffice, data=_form(pdf, **form))
    assert resp.status == 403 and await _error(resp) == "ROLE_FORBIDDEN"

    other = await _auth(db, "officer", key_aliases=["seal"])
    resp = await sign_client.post("/v1/sign", headers=other, data=_form(pdf, **form))
    assert resp.status == 403 and await _error(resp) == "KEY_FORBIDDEN"
    failed = await db.fetchrow("SELECT * FROM audit_log WHERE action = 'pdf.sign.failed'")
    assert failed["subject"] == "officer-a" and failed["detail"]["error"] == "KEY_FORBIDDEN"
    assert failed["detail"]["input_sha256"] == _sha(pdf)

    resp = await sign_client.post("/v1/sign", headers=admin, data=_form(
        pdf, key="nobody", role="agency"))
    assert resp.status == 404 and await _error(resp) == "KEY_UNKNOWN"
    resp = await sign_client.post("/v1/sign", headers=officer, data=_form(
        pdf, key="seal", role="competent_person"))
    assert resp.status == 422 and await _error(resp) == "KEY_ROLE_MISMATCH"
    resp = await sign_client.post("/v1/sign", headers=officer, data=_form(
        pdf, key="officer-a", role="judge"))
    assert resp.status == 400 and await _error(resp) == "INVALID_PARAMETER"
    resp = await sign_client.post("/v1/sign", headers=officer, data=_form(
        pdf, key="officer-a", role="competent_person", box="1,2,3"))
    assert resp.status == 400 and await _error(resp) == "INVALID_PARAMETER"

    codes = [r["detail"]["error"] for r in await db.fetch(
        "SELECT detail FROM audit_log WHERE action = 'pdf.sign.failed' ORDER BY id")]
    assert codes == ["KEY_FORBIDDEN", "KEY_UNKNOWN", "KEY_ROLE_MISMATCH"]
    assert await audit.verify_chain(db) is None


async def test_unreadable_and_too_large(sign_gw, sign_client, db, pdf):
    """ISO 32000-2 §7.5: a body that is not a readable PDF (no header, or a PDF whose offsets
    a text conversion broke) is 422 ``PDF_UNREADABLE``, never a 500."""
    officer = await _auth(db, "officer", key_aliases=["officer-a"])
    for mangled in (pdf.replace(b"\n", b"\r\n"), pdf.decode("latin-1").encode("utf-8"),
                    bytes(range(256)) * 16):
        resp = await sign_client.post("/v1/verify", headers=officer, data=_form(mangled))
        assert resp.status == 422 and await _error(resp) == "PDF_UNREADABLE"
    garbage = b"this is not a PDF at all\n" * 40
    resp = await sign_client.post("/v1/sign", headers=officer, data=_form(
        garbage, key="officer-a", role="competent_person"))
    assert resp.status == 422 and await _error(resp) == "PDF_UNREADABLE"
    broken = b"%PDF-1.7\n" + garbage
    resp = await sign_client.post(
        "/v1/sign", headers={**officer, "Content-Type": "application/pdf"}, data=broken,
        params={"key": "officer-a", "role": "competent_person"})
    assert resp.status == 422 and await _error(resp) == "PDF_UNREADABLE"
    resp = await sign_client.post(
        "/v1/verify", headers={**officer, "Content-Type": "application/pdf"}, data=broken)
    assert resp.status == 422 and await _error(resp) == "PDF_UNREADABLE"
    resp = await sign_client.post("/v1/verify", headers=officer, data=_form(garbage))
    assert resp.status == 422 and await _error(resp) == "PDF_UNREADABLE"

    limit = sign_gw.settings.max_document_bytes
    huge = b"%PDF-1.7\n" + b"0" * limit
    resp = await sign_client.post("/v1/sign", headers=officer, data=_form(
        huge, key="officer-a", role="competent_person"))
    assert resp.status == 413 and await _error(resp) == "PDF_TOO_LARGE"


async def test_encrypted_pdf_is_refused_by_verify(sign_gw, sign_client, db, pdf):
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.pdf_utils.writer import copy_into_new_writer

    writer = copy_into_new_writer(PdfFileReader(io.BytesIO(pdf)))
    writer.encrypt("owner-pass", "user-pass")
    out = io.BytesIO()
    writer.write(out)
    operator = await _auth(db, "operator")
    resp = await sign_client.post("/v1/verify", headers=operator, data=_form(out.getvalue()))
    assert resp.status == 422 and await _error(resp) == "PDF_ENCRYPTED"
    resp = await sign_client.post("/v1/verify", data=_form(out.getvalue()))
    assert resp.status == 401


async def test_tampered_pdf_verifies_invalid(sign_gw, sign_client, db, pdf):
    officer = await _auth(db, "officer", key_aliases=["officer-a"])
    resp = await sign_client.post("/v1/sign", headers=officer, data=_form(
        pdf, key="officer-a", role="competent_person"))
    assert resp.status == 200, await resp.text()
    data = bytearray(await resp.read())
    data[data.index(b"page 1 of 1")] ^= 0x01
    operator = await _auth(db, "operator")
    resp = await sign_client.post("/v1/verify", headers=operator, data=_form(bytes(data)))
    assert resp.status == 200, await resp.text()
    report = await resp.json()
    assert report["verdict"] == "invalid"
    assert report["signatures"][0]["verdict"] == "invalid"


async def test_rate_limits_per_token_and_per_key(database_url, bus_prefix, db, pki, keys_file,
                                               pdf, aiohttp_client):
    """``signing.rate_per_token`` / ``signing.rate_per_key`` (requests per minute)."""
    from gateway.app import Gateway

    sign_gw = Gateway(_settings(database_url, bus_prefix, pki, keys_file, rate_per_token=2,
                                rate_per_key=1))
    await sign_gw.start()
    try:
        await _rate_limited(await aiohttp_client(sign_gw.web_app()), db, pdf)
    finally:
        await sign_gw.stop()


async def _rate_limited(sign_client, db, pdf):
    stranger = await _auth(db, "officer", key_aliases=["nothing"])
    form = {"key": "officer-a", "role": "competent_person"}
    for _ in range(2):
        resp = await sign_client.post("/v1/sign", headers=stranger, data=_form(pdf, **form))
        assert resp.status == 403
    resp = await sign_client.post("/v1/sign", headers=stranger, data=_form(pdf, **form))
    assert resp.status == 429 and await _error(resp) == "RATE_LIMITED"
    assert int(resp.headers["Retry-After"]) >= 1

    # the forbidden attempts did not touch officer-a's key bucket; a mismatch (allowed) does
    officer = await _auth(db, "officer", key_aliases=["seal"])
    bad_role = {"key": "seal", "role": "competent_person"}
    resp = await sign_client.post("/v1/sign", headers=officer, data=_form(pdf, **bad_role))
    assert resp.status == 422
    resp = await sign_client.post("/v1/sign", headers=officer, data=_form(pdf, **bad_role))
    assert resp.status == 429
    assert (await resp.json())["error"]["details"]["scope"] == "key"
    assert "Retry-After" in resp.headers


async def test_overloaded_pool_answers_503_with_retry_after(sign_gw, sign_client, db, pdf):
    from gateway.api.signing import signing_backend
    from signing.pool import SigningPool

    backend = signing_backend(sign_gw.services)
    backend.pool.close(wait=False)
    full = SigningPool(max_workers=1, key_config_path=sign_gw.settings.signing.keys_file,
                       max_pending=0)  # no room at all: every job is refused at once
    object.__setattr__(backend, "pool", full)
    try:
        officer = await _auth(db, "officer", key_aliases=["officer-a"])
        resp = await sign_client.post("/v1/sign", headers=officer, data=_form(
            pdf, key="officer-a", role="competent_person"))
        assert resp.status == 503 and await _error(resp) == "POOL_OVERLOADED"
        assert resp.headers["Retry-After"] == "1"
    finally:
        full.close(wait=False)


async def test_dead_worker_is_replaced_and_the_request_still_signed(sign_gw, sign_client, db,
                                                                     pdf):
    from gateway.api.signing import signing_backend

    backend = signing_backend(sign_gw.services)
    killed = await backend.pool.worker_pid()
    os.kill(killed, signal.SIGKILL)  # a worker of this test's pool, idle
    officer = await _auth(db, "officer", key_aliases=["officer-a"])
    form = {"key": "officer-a", "role": "competent_person"}
    resp = await sign_client.post("/v1/sign", headers=officer, data=_form(pdf, **form))
    # a worker found dead before a job is started again: the job never sees it
    assert resp.status == 200, await resp.text()
    assert killed not in backend.pool.worker_pids()
    resp = await sign_client.post("/v1/sign", headers=officer, data=_form(pdf, **form))
    assert resp.status == 200, await resp.text()


async def test_pool_is_closed_with_the_app(sign_gw, aiohttp_client, db, pdf):
    client = await aiohttp_client(sign_gw.web_app())
    officer = await _auth(db, "officer", key_aliases=["officer-a"])
    resp = await client.post("/v1/sign", headers=officer, data=_form(
        pdf, key="officer-a", role="competent_person"))
    assert resp.status == 200
    assert "signing_pool" in sign_gw.extensions
    await client.close()
    assert "signing_pool" not in sign_gw.extensions


def test_token_bucket_refills_with_the_clock():
    now = [0.0]
    buckets = TokenBuckets(60, clock=lambda: now[0])  # one per second, burst 60
    assert all(buckets.take("t") == 0 for _ in range(60))
    assert buckets.take("t") == 1
    now[0] += 1.0
    assert buckets.take("t") == 0
    assert buckets.take("other") == 0  # buckets are independent
    assert TokenBuckets(0).take("t") == 0  # 0 disables the limit


def test_sign_limits_raise_rate_limited_with_scope():
    from gateway.api.ratelimit import RateLimited

    limits = SignRateLimits(per_token=1, per_key=1, clock=lambda: 0.0)
    limits.take_token("client")
    with pytest.raises(RateLimited) as caught:
        limits.take_token("client")
    assert caught.value.retry_after == 60 and caught.value.details["scope"] == "token"


async def test_a_rate_below_one_per_minute_still_lets_requests_through(
        database_url, bus_prefix, db, pki, keys_file, pdf, aiohttp_client):
    """``signing.rate_per_token = 0.5`` is one request every two minutes, not none: a token
    bucket holds at least one token (RFC 6585 §4: 429 says when to come back, and that time
    comes). Retry-After is then the time one token takes to come back (120 s)."""
    from gateway.app import Gateway

    sign_gw = Gateway(_settings(database_url, bus_prefix, pki, keys_file, rate_per_token=0.5))
    await sign_gw.start()
    try:
        client = await aiohttp_client(sign_gw.web_app())
        stranger = await _auth(db, "officer", key_aliases=["nothing"])
        form = {"key": "officer-a", "role": "competent_person"}
        resp = await client.post("/v1/sign", headers=stranger, data=_form(pdf, **form))
        assert resp.status == 403, await resp.text()  # let through, then refused the key
        resp = await client.post("/v1/sign", headers=stranger, data=_form(pdf, **form))
        assert resp.status == 429 and await _error(resp) == "RATE_LIMITED"
        assert 100 <= int(resp.headers["Retry-After"]) <= 120
    finally:
        await sign_gw.stop()
