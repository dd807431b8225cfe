"""Revoked certificates in the gateway: the judge verifies with ``signing.revocation_mode``
(default hard-fail) and the CRL cache the gateway refreshes in the background from its trust
bundles' CRL distribution points (real CRL traffic from the test PKI's illusionist; responders
unreachable from the pool's workers: ``pki.test`` does not resolve there)."""

from __future__ import annotations

import io

import aiohttp
import pytest
from certomancer.registry import ServiceLabel
from pyhanko.sign.validation.dss import DocumentSecurityStore

from gateway.app import Gateway
from gateway.config import SigningSettings
from gateway.inbound.verification import PdfJudge
from gateway.pki.revocation import HTTP_SESSION, CrlRefresher
from signing.testpki.pdfs import make_pdf
from signing.testpki.samples import sign_sample
from signing.trust import RevocationCache
from tests.conftest import wait_for
from tests.flows.conftest import flow_settings, outbox_empty

CRL_URL = "http://pki.test/gov-rsa/crls/{}/latest.crl"
ROOT, INTERM = "Test Root CA", "Test Issuing CA"


@pytest.fixture(scope="module")
async def pki_http(pki):
    async with pki.serve_session() as session:
        yield session


@pytest.fixture(scope="module")
async def docs(pki, pki_http):
    plain = make_pdf(1, "Revocation")
    revoked = await sign_sample(plain, pki, "revoked", level="B-T", session=pki_http)
    out = io.BytesIO(revoked)  # the revoked signer's PDF with the CRLs in its DSS (LTV data)
    DocumentSecurityStore.add_dss(out, None, crls=[
        pki.arch.service_registry.get_crl(ServiceLabel(r)) for r in ("root", "interm")])
    return {
        "good": await sign_sample(plain, pki, "officer", level="B-T", session=pki_http),
        "good_lt": await sign_sample(plain, pki, "officer", level="B-LT", session=pki_http),
        "revoked": revoked,
        "revoked_dss": out.getvalue(),
    }


@pytest.fixture
def bundle(pki, tmp_path):
    """What an operator installs: the root and the issuing CA."""
    path = tmp_path / "bundle.pem"
    path.write_bytes(pki.trust_bundle_path.read_bytes() + (pki.folder / "interm.cert.pem")
                     .read_bytes())
    return path


def _sig(file) -> dict:
    return file.report["signatures"][0]


def _age(gw, issuer: str):
    return gw.metrics.registry.get_sample_value(
        "edoc_crl_age_seconds", {"issuer": f"Common Name: {issuer}, Organization: "
                                           "Test Government CA, Country: VN"})


async def test_gateway_refreshes_crls_and_a_revoked_signer_is_invalid(
        database_url, bus_prefix, pki, axis, db, docs, pki_http, bundle, tmp_path):
    """(a) revoked + CRL in the cache -> invalid/REVOKED although no responder answers;
    (d) a good signer with fresh CRLs -> valid; ages and fetch errors in metrics."""
    bogus = CRL_URL.format("nowhere")
    settings = flow_settings(database_url, bus_prefix, pki, axis, signing={
        "trust_bundles": [str(bundle)], "offline": False, "workers": 1,
        "revocation_cache_dir": str(tmp_path / "crls"), "crl_refresh_interval": 3600,
        "crl_urls": [CRL_URL.format("interm"), bogus]})
    assert settings.signing.revocation_mode == "hard-fail"  # the default
    gw = Gateway(settings)
    gw.extensions[HTTP_SESSION] = pki_http
    await gw.start()
    try:
        await wait_for(lambda: _age(gw, ROOT) is not None and _age(gw, INTERM) is not None,
                       timeout=20)
        assert 0 <= _age(gw, INTERM) < 8 * 86400  # the test PKI publishes a CRL every 7 days
        assert len(list((tmp_path / "crls").glob("*.crl"))) == 2
        assert gw.metrics.registry.get_sample_value(
            "edoc_crl_fetch_errors_total", {"url": bogus, "code": "CRL_FETCH_FAILED"}) >= 1

        verdict = await gw.judge.judge({1: docs["revoked"], 2: docs["good"]})
        revoked, good = verdict.files[1], verdict.files[2]
        assert revoked.verdict == "invalid" and verdict.verdict == "invalid"
        sig = _sig(revoked)
        assert sig["reason"] == "REVOKED", sig
        assert sig["revocation"]["source"] == "cache"
        assert sig["revocation"]["reason"] == "key_compromise"
        assert good.verdict == "valid", _sig(good)
        assert "cache" in _sig(good)["revocation"]["sources"]
    finally:
        await gw.stop()


async def test_judge_is_hard_fail_by_default_and_embedded_data_counts(pki, docs, tmp_path):
    """(b) no revocation data -> indeterminate TRY_LATER; (c) the PDF's DSS counts."""
    judge = PdfJudge(SigningSettings(trust_bundles=[str(pki.trust_bundle_path)], offline=True,
                                     workers=1, revocation_cache_dir=str(tmp_path / "empty")))
    try:
        verdict = await judge.judge({i: docs[n] for i, n in enumerate(
            ("good", "revoked", "good_lt", "revoked_dss"))})
    finally:
        judge.close()
    good, revoked, good_lt, revoked_dss = (verdict.files[i] for i in range(4))
    for file in (good, revoked):
        assert file.verdict == "indeterminate"
        assert (_sig(file)["sub_indication"], _sig(file)["reason"]) == (
            "TRY_LATER", "REVOCATION_UNKNOWN"), _sig(file)
    assert good_lt.verdict == "valid" and _sig(good_lt)["revocation"]["source"] == "embedded"
    assert revoked_dss.verdict == "invalid" and _sig(revoked_dss)["reason"] == "REVOKED"
    assert _sig(revoked_dss)["revocation"]["source"] == "embedded"


async def test_a_failed_or_forged_refresh_keeps_the_previous_crl(pki, pki_http, bundle,
                                                                tmp_path, aiohttp_server):
    from aiohttp import web

    cache = RevocationCache(tmp_path / "crls")
    urls = [CRL_URL.format("interm")]
    good = await CrlRefresher(cache, [str(bundle)], extra_urls=urls, session=pki_http).refresh()
    assert good == {CRL_URL.format("root"): "updated", CRL_URL.format("interm"): "updated"}
    before = sorted(c.dump() for c in cache.crls)

    forged = bytearray(pki.arch.service_registry.get_crl(ServiceLabel("interm")).dump())
    forged[-5] ^= 0x01  # a CRL with the issuing CA's name whose signature does not verify
    app = web.Application()
    app.router.add_get("/forged.crl", lambda _r: web.Response(body=bytes(forged)))
    server = await aiohttp_server(app)
    forged_url = f"http://127.0.0.1:{server.port}/forged.crl"
    async with aiohttp.ClientSession() as plain:  # pki.test does not resolve: unreachable
        outcomes = await CrlRefresher(cache, [str(bundle)], extra_urls=[forged_url],
                                      session=plain).refresh()
    assert outcomes == {CRL_URL.format("root"): "CRL_FETCH_FAILED",
                        forged_url: "CRL_SIGNATURE_INVALID"}
    assert sorted(c.dump() for c in cache.crls) == before
    assert sorted(c.dump() for c in RevocationCache(tmp_path / "crls").crls) == before


async def test_issuing_ca_crl_is_learned_from_a_verified_signer(
        database_url, bus_prefix, pki, axis, db, docs, pki_http, bundle, tmp_path, amqp):
    """The bundle names only the root's CRL; the issuing CA's is on the certificates it issued.
    A document signed by a bundle-issued certificate teaches the refresher that URL: the next
    document's signer is checked against it. A certificate from outside the bundle teaches
    nothing (its URLs are the sender's choice)."""
    from gateway.demo.samples import edoc, package
    from gateway.inbound.rules import Arrival
    from tests.flows.conftest import D1, SENDER

    settings = flow_settings(database_url, bus_prefix, pki, axis, signing={
        "trust_bundles": [str(bundle)], "offline": True, "workers": 1,
        "revocation_cache_dir": str(tmp_path / "crls"), "crl_refresh_interval": 3600})
    gw = Gateway(settings)
    gw.extensions[HTTP_SESSION] = pki_http
    await gw.start()
    try:
        await wait_for(lambda: _age(gw, ROOT) is not None, timeout=20)
        assert _age(gw, INTERM) is None  # nothing in the bundle names the issuing CA's CRL

        stranger = await sign_sample(make_pdf(1, "Stranger"), pki, "stranger")
        before = await gw.judge.judge({0: stranger})
        assert _sig(before.files[0])["signer"]["crl_urls"] == []
        first = await gw.intake.take(package(edoc(SENDER, [D1], docs["good"], number=7101)),
                                     Arrival())
        assert first.state == "ROUTED"
        assert list(gw.learned_crl_urls.urls) == [CRL_URL.format("interm")]
        await wait_for(lambda: _age(gw, INTERM) is not None, timeout=20)
        after = await gw.judge.judge({0: docs["good"]})
        assert after.files[0].verdict == "valid", _sig(after.files[0])
    finally:
        await wait_for(lambda: outbox_empty(db), timeout=15)
        await gw.stop()
        channel = await amqp.channel()  # the routed document's message: leave no trace
        queue = await channel.get_queue(gw.topology.agency_queue(D1.organ_id), ensure=False)
        await queue.purge()
        await channel.close()

