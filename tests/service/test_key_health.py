"""Signing keys report their health (issue 12): ``GET /v1/keys/health``, ``/readyz``, metrics,
and ``/v1/sign`` answers an expired key (409 ``KEY_EXPIRED``) or an unreachable token (503
``KEY_UNAVAILABLE`` with Retry-After) instead of signing or failing with a 500.

Real PostgreSQL, RabbitMQ, signing pool processes, test PKI (its ``expired`` signer: valid
2020-01-01..2021-01-01), a certificate issued here that expires in 10 days, and real SoftHSM2
tokens (created in a child process, so that the SoftHSM module this process may have loaded
for another test never decides where they live).
"""

from __future__ import annotations

import asyncio
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.pki.keyhealth import monitor
from signing.testpki import build_test_pki
from signing.testpki.pdfs import make_pdf
from signing.testpki.softhsm import (
    SOFTHSM_MODULE,
    init_softhsm_token_in_child,
    softhsm_available,
)
from tests.conftest import make_settings
from tests.service.signing_client import bearer, pdf_form

needs_softhsm = pytest.mark.skipif(not softhsm_available(), reason="SoftHSM2 not installed")

def make_token(pki, folder: Path, label: str, *spare: str) -> Path:
    """A SoftHSM2 token ``label`` holding the test PKI's seal (and empty ``spare`` tokens) in
    ``folder``, made in a child process; returns its ``softhsm2.conf``."""
    return init_softhsm_token_in_child(folder, pki, label=label, certs=("seal",),
                                       spare_labels=spare).conf


def issue_p12(pki, path: Path, days: float) -> Path:
    """A PKCS#12 whose certificate (issued by the test PKI's intermediate CA) expires in
    ``days`` days."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import NameOID

    ca_key = serialization.load_pem_private_key(
        (pki.folder.parent / "keys-rsa" / "interm.key.pem").read_bytes(), None)
    ca = x509.load_der_x509_certificate(pki.cert("interm").dump())
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Trần Thị Sắp")]))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=days))
            .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False,
                                         False), critical=True)
            .sign(ca_key, hashes.SHA256()))
    path.write_bytes(pkcs12.serialize_key_and_certificates(
        b"soon", key, cert, [ca], serialization.BestAvailableEncryption(pki.p12_passphrase)))
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return build_test_pki(tmp_path_factory.mktemp("key-health-pki"), arch="gov-rsa")


@pytest.fixture(scope="module")
def tokens(pki, tmp_path_factory) -> Path:
    """Token ``agency`` (the seal) and an empty ``spare`` token, one SoftHSM configuration."""
    if not softhsm_available():
        pytest.skip("SoftHSM2 not installed")
    return make_token(pki, tmp_path_factory.mktemp("key-health-hsm"), "agency", "spare")


def _p12(alias: str, role: str, path: Path) -> str:
    return (f'[keys.{alias}]\nrole = "{role}"\nowner = "000.00.01.H99"\npath = "{path}"\n'
            'passphrase_file = "p12.pass"\n\n')


def _p11(alias: str, label: str, pin: Path, module: str = SOFTHSM_MODULE) -> str:
    return (f'[keys.{alias}]\nrole = "agency"\nowner = "000.00.01.H99"\nsource = "pkcs11"\n'
            f'module = "{module}"\ntoken_label = "{label}"\nkey_label = "seal"\n'
            f'cert_label = "seal"\npin_file = "{pin}"\n\n')


@pytest.fixture(scope="module")
def keys_file(pki, tokens, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("key-health-keys")
    (folder / "p12.pass").write_bytes(pki.p12_passphrase + b"\n")
    (folder / "wrong.pin").write_text("0000\n")
    path = folder / "keys.toml"
    path.write_text(
        _p12("officer-a", "competent_person", pki.p12("officer"))
        + _p12("old-seal", "agency", pki.p12("expired"))
        + _p12("soon", "competent_person", issue_p12(pki, folder / "soon.p12", 10.5))
        + _p11("hsm-seal", "agency", tokens.parent / "user.pin")
        + _p11("hsm-badpin", "spare", folder / "wrong.pin")
        + _p11("hsm-nomodule", "agency", tokens.parent / "user.pin",
               module=str(folder / "gone" / "libsofthsm2.so")),
        encoding="utf-8")
    return path


def _settings(database_url, bus_prefix, pki, keys_file, **signing):
    return make_settings(database_url, bus_prefix, signing={
        "keys_file": str(keys_file), "trust_bundles": [str(pki.trust_bundle_path)],
        "offline": True, "workers": 1, "crl_refresh_interval": 0, **signing})


async def _start(settings, conf: Path, monkeypatch):
    from gateway.app import Gateway

    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))  # inherited by the pool's workers
    gw = Gateway(settings)
    await gw.start()
    return gw


@pytest.fixture
async def keys_gw(database_url, bus_prefix, db, pki, keys_file, tokens, monkeypatch):
    gw = await _start(_settings(database_url, bus_prefix, pki, keys_file), tokens, monkeypatch)
    yield gw
    await gw.stop()


@pytest.fixture
async def keys_client(keys_gw, aiohttp_client):
    return await aiohttp_client(keys_gw.web_app())


async def _auth(db, role: str, **kw) -> dict[str, str]:
    return await bearer(db, role, f"{role}-keys-test", **kw)


_form = pdf_form


async def _checked(client, headers, within: float = 90.0) -> dict[str, dict]:
    """The health report once every key has been checked (the first round runs at start)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        resp = await client.get("/v1/keys/health", headers=headers)
        assert resp.status == 200, await resp.text()
        keys = {k["alias"]: k for k in (await resp.json())["keys"]}
        if all(k["last_check"] for k in keys.values()):
            return keys
        assert asyncio.get_running_loop().time() < deadline, keys
        await asyncio.sleep(0.2)


@needs_softhsm
async def test_each_key_reports_its_state_in_health_readyz_and_metrics(keys_gw, keys_client, db):
    """RFC 5280 §4.1.2.5 validity period and a canary signature per key: ok, warning (< 30
    days), expired, unreachable (wrong PIN, PKCS#11 module missing); /readyz stays ready."""
    operator = await _auth(db, "operator")
    keys = await _checked(keys_client, operator)
    assert {a: k["state"] for a, k in keys.items()} == {
        "officer-a": "ok", "old-seal": "expired", "soon": "warning", "hsm-seal": "ok",
        "hsm-badpin": "unreachable", "hsm-nomodule": "unreachable"}
    assert keys["officer-a"]["kind"] == "pkcs12" and keys["hsm-seal"]["kind"] == "pkcs11"
    assert keys["soon"]["days_to_expiry"] == 10
    assert keys["old-seal"]["not_after"].startswith("2021-01-01")
    assert keys["old-seal"]["days_to_expiry"] < -1000
    assert keys["officer-a"]["last_error"] is None
    assert keys["hsm-badpin"]["last_error"]["code"] == "KEY_LOAD"
    assert "PIN" in keys["hsm-badpin"]["last_error"]["message"]
    assert keys["hsm-nomodule"]["last_error"]["code"] == "KEY_TOKEN"
    assert keys["hsm-badpin"]["days_to_expiry"] is None  # never loaded: nothing known

    resp = await keys_client.get("/readyz")
    body = await resp.json()
    assert resp.status == 200 and body["status"] == "ready", body  # keys never make it unready
    assert body["keys"]["status"] == "degraded" and body["degraded"] == ["keys"]
    assert body["keys"]["states"] == {"ok": 2, "expired": 1, "warning": 1, "unreachable": 2}
    assert "old-seal: expired" in body["keys"]["problems"]

    text = await (await keys_client.get("/metrics")).text()
    assert 'edoc_signing_key_up{alias="officer-a"} 1.0' in text
    assert 'edoc_signing_key_up{alias="soon"} 1.0' in text
    assert 'edoc_signing_key_up{alias="hsm-badpin"} 0.0' in text
    assert 'edoc_signing_key_up{alias="old-seal"} 0.0' in text
    assert 'edoc_signing_key_expiry_days{alias="soon"} 10.' in text
    assert ('edoc_signing_key_canary_failures_total{alias="hsm-badpin",code="KEY_LOAD"} 1.0'
            in text)


@needs_softhsm
async def test_expired_key_is_409_and_unreachable_token_503_not_signed(keys_gw, keys_client,
                                                                        db):
    """A certificate past notAfter never signs (RFC 5280 §4.1.2.5; ETSI EN 319 102-1 §5.2.6:
    such a signature could not be validated): 409 KEY_EXPIRED. A token that cannot be reached
    is 503 KEY_UNAVAILABLE with Retry-After, never a 500 nor a fault of the PDF."""
    admin = await _auth(db, "admin")
    pdf = make_pdf(1, "Công văn")
    resp = await keys_client.post("/v1/sign", headers=admin, data=_form(
        pdf, key="old-seal", role="agency"))
    assert resp.status == 409, await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == "KEY_EXPIRED"
    assert error["details"]["alias"] == "old-seal"
    assert error["details"]["not_after"].startswith("2021-01-01")
    for alias, cause in (("hsm-badpin", "KEY_LOAD"), ("hsm-nomodule", "KEY_TOKEN")):
        resp = await keys_client.post("/v1/sign", headers=admin, data=_form(
            pdf, key=alias, role="agency"))
        assert resp.status == 503, await resp.text()
        error = (await resp.json())["error"]
        assert (error["code"], error["details"]["cause"]) == ("KEY_UNAVAILABLE", cause)
        assert int(resp.headers["Retry-After"]) > 0
    failed = [r["detail"]["error"] for r in await db.fetch(
        "SELECT detail FROM audit_log WHERE action = 'pdf.sign.failed' ORDER BY id")]
    assert failed == ["KEY_EXPIRED", "KEY_UNAVAILABLE", "KEY_UNAVAILABLE"]
    # the key that is fine still signs, on the token and from a file
    for alias, role in (("hsm-seal", "agency"), ("officer-a", "competent_person"),
                        ("soon", "competent_person")):
        resp = await keys_client.post("/v1/sign", headers=admin, data=_form(
            pdf, key=alias, role=role))
        assert resp.status == 200, (alias, await resp.text())
    keys = await _checked(keys_client, admin)
    assert keys["old-seal"]["last_error"]["code"] == "KEY_EXPIRED"


@needs_softhsm
async def test_token_deleted_while_running_is_503_and_reported_unreachable(
        database_url, bus_prefix, db, pki, tmp_path, monkeypatch, aiohttp_client):
    """A token deleted under an open session (object handles gone) is KEY_UNAVAILABLE after
    the session is reopened once, not PDF_UNREADABLE; the next check reports it unreachable."""
    conf = await asyncio.to_thread(make_token, pki, tmp_path / "hsm", "doomed")
    keys_file = tmp_path / "keys.toml"
    keys_file.write_text(_p11("doomed", "doomed", tmp_path / "hsm" / "user.pin"))
    gw = await _start(_settings(database_url, bus_prefix, pki, keys_file), conf, monkeypatch)
    try:
        client = await aiohttp_client(gw.web_app())
        operator = await _auth(db, "operator")
        admin = await _auth(db, "admin")
        assert (await _checked(client, operator))["doomed"]["state"] == "ok"
        pdf = make_pdf(1, "Công văn")
        resp = await client.post("/v1/sign", headers=admin, data=_form(
            pdf, key="doomed", role="agency"))
        assert resp.status == 200, await resp.text()
        await asyncio.to_thread(
            subprocess.run, ["softhsm2-util", "--delete-token", "--token", "doomed"],
            check=True, capture_output=True, env={"SOFTHSM2_CONF": str(conf), "PATH": "/usr/bin"})
        resp = await client.post("/v1/sign", headers=admin, data=_form(
            pdf, key="doomed", role="agency"))
        assert resp.status == 503, await resp.text()
        error = (await resp.json())["error"]
        assert (error["code"], error["details"]["cause"]) == ("KEY_UNAVAILABLE", "KEY_TOKEN")
        assert resp.headers["Retry-After"]
        await monitor(gw.services).check_all()
        resp = await client.get("/v1/keys/health", headers=operator)
        (key,) = (await resp.json())["keys"]
        assert key["state"] == "unreachable" and key["last_error"]["code"] == "KEY_TOKEN"
        assert key["days_to_expiry"] > 1000  # still known from the last good check
        body = await (await client.get("/readyz")).json()
        assert body["status"] == "ready" and body["keys"]["status"] == "degraded"
    finally:
        await gw.stop()


@needs_softhsm
async def test_keys_health_needs_an_operator_token(keys_gw, keys_client, db):
    """Who may read key health: operator and admin (200); no token 401; other roles 403."""
    resp = await keys_client.get("/v1/keys/health")
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "AUTH_REQUIRED"
    resp = await keys_client.get("/v1/keys/health",
                                 headers={"Authorization": "Bearer edoc_not-a-real-token"})
    assert resp.status == 401
    for role, kw in (("officer", {"key_aliases": ["officer-a"]}),
                     ("eoffice", {"agencies": ["000.00.01.H99"]}), ("axis", {})):
        resp = await keys_client.get("/v1/keys/health", headers=await _auth(db, role, **kw))
        assert resp.status == 403, role
        assert (await resp.json())["error"]["code"] == "ROLE_FORBIDDEN"
    for role in ("operator", "admin"):
        resp = await keys_client.get("/v1/keys/health", headers=await _auth(db, role))
        assert resp.status == 200, role
    resp = await keys_client.post("/v1/keys/health", headers=await _auth(db, "operator"))
    assert resp.status == 405


async def test_without_a_key_file_there_is_nothing_to_report(gateway, client, db):
    operator = await _auth(db, "operator")
    resp = await client.get("/v1/keys/health", headers=operator)
    assert resp.status == 200
    body = await resp.json()
    assert body["keys"] == [] and body["warning_days"] == 30 and body["check_interval"] == 300
    body = await (await client.get("/readyz")).json()
    assert "keys" not in body and "degraded" not in body


async def test_key_paths_never_reach_callers_or_readyz(database_url, bus_prefix, db, pki,
                                                      tmp_path, monkeypatch, aiohttp_client):
    """CWE-209: where the keys live (key file, PKCS#12, PIN file, PKCS#11 module) is the
    operator's business, never a caller's. A key whose file is missing is 503 KEY_UNAVAILABLE
    without its path; only GET /v1/keys/health (operator) says which file failed."""
    secret = tmp_path / "secret-key-dir"
    secret.mkdir()
    (secret / "p12.pass").write_bytes(pki.p12_passphrase + b"\n")
    keys_file = secret / "keys.toml"
    keys_file.write_text(_p12("gone", "competent_person", secret / "gone.p12"), encoding="utf-8")
    gw = await _start(_settings(database_url, bus_prefix, pki, keys_file), tmp_path, monkeypatch)
    try:
        client = await aiohttp_client(gw.web_app())
        admin = await _auth(db, "admin")
        resp = await client.post("/v1/sign", headers=admin, data=_form(
            make_pdf(1, "Công văn"), key="gone", role="competent_person"))
        body = await resp.text()
        assert resp.status == 503, body
        error = (await resp.json())["error"]
        assert (error["code"], error["details"]["cause"]) == ("KEY_UNAVAILABLE", "KEY_LOAD")
        assert error["details"]["alias"] == "gone"
        assert "secret-key-dir" not in body and "gone.p12" not in body, body
        keys = await _checked(client, await _auth(db, "operator"))
        assert "gone.p12" in keys["gone"]["last_error"]["message"]  # the operator's view
    finally:
        await gw.stop()


async def test_an_unusable_key_file_is_reported_without_its_path(database_url, bus_prefix, db,
                                                                pki, tmp_path, monkeypatch,
                                                                aiohttp_client):
    """A key file the gateway cannot use (here ``~nosuchuser/…``: no home folder to expand,
    and a JSON nesting past the parser's depth) is KEY_CONFIG: /readyz, /metrics and
    /v1/keys/health answer (never a 500) and the unauthenticated /readyz does not name the
    file; /v1/sign is 503 KEY_CONFIG without the path."""
    secret = tmp_path / "secret-key-dir"
    secret.mkdir()
    tilde = secret / "keys.toml"
    tilde.write_text('[keys.a]\nrole = "agency"\nowner = "x"\npath = "~nosuchuser-e9/a.p12"\n',
                     encoding="utf-8")
    deep = secret / "keys.json"
    deep.write_text('{"keys": ' + "[" * 100_000 + "]" * 100_000 + "}", encoding="utf-8")
    for keys_file in (tilde, deep):
        gw = await _start(_settings(database_url, bus_prefix, pki, keys_file), tmp_path,
                          monkeypatch)
        try:
            client = await aiohttp_client(gw.web_app())
            resp = await client.get("/readyz")
            text = await resp.text()
            assert resp.status == 200, text
            assert "secret-key-dir" not in text, text
            assert (await resp.json())["keys"]["status"] == "degraded"
            assert (await client.get("/metrics")).status == 200
            resp = await client.get("/v1/keys/health", headers=await _auth(db, "operator"))
            assert resp.status == 200, await resp.text()
            assert (await resp.json())["error"]["code"] == "KEY_CONFIG"
            resp = await client.post("/v1/sign", headers=await _auth(db, "admin"), data=_form(
                make_pdf(1, "Công văn"), key="a", role="agency"))
            text = await resp.text()
            assert resp.status == 503, text
            assert (await resp.json())["error"]["code"] == "KEY_CONFIG"
            assert "secret-key-dir" not in text, text
        finally:
            await gw.stop()
