"""Revocation: hard-fail without data is TRY_LATER, the CRL cache checks what it takes in, and
the pool's workers see a cache that changed (real CRLs from the test PKI's illusionist)."""

from __future__ import annotations

import pickle

import pytest
import pytest_asyncio
from asn1crypto import crl as asn1_crl

from signing.pool import SigningPool
from signing.report import Verdict
from signing.testpki.samples import sign_sample
from signing.trust import CrlRejected, RevocationCache, check_crl
from signing.verify import VerificationPolicy, verify_pdf


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def docs(test_pki, pki_session, plain_pdf):
    s = pki_session
    return {
        "bt": await sign_sample(plain_pdf, test_pki, "officer", level="B-T", session=s),
        "revoked": await sign_sample(plain_pdf, test_pki, "revoked", level="B-T", session=s),
    }


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def crls(pki_session) -> dict[str, bytes]:
    """The CRLs of the root and the issuing CA, fetched over (in-process) HTTP."""
    out = {}
    for repo in ("root", "interm"):
        async with pki_session.get(f"http://pki.test/gov-rsa/crls/{repo}/latest.crl") as resp:
            assert resp.status == 200
            out[repo] = await resp.read()
    return out


def _hard(test_pki, cache=None, **kw):
    return VerificationPolicy(trust_roots=test_pki.trust_roots, offline=True,
                              revocation_mode="hard-fail", revocation_cache=cache, **kw)


def test_hard_fail_without_revocation_data_is_try_later(docs, test_pki):
    """EN 319 102-1: no usable revocation data -> INDETERMINATE/TRY_LATER, not an untrusted
    chain (pyHanko reports CERTIFICATE_CHAIN_GENERAL_FAILURE)."""
    for name in ("bt", "revoked"):
        sig = verify_pdf(docs[name], _hard(test_pki)).signatures[0]
        assert sig.verdict is Verdict.INDETERMINATE
        assert (sig.indication.value, sig.sub_indication, sig.reason) == (
            "INDETERMINATE", "TRY_LATER", "REVOCATION_UNKNOWN"), sig.to_json()


def test_issuing_ca_crl_missing_is_try_later_too(docs, test_pki, crls):
    cache = RevocationCache()
    cache.add_crl(crls["root"])  # the intermediate is covered, the signer is not
    sig = verify_pdf(docs["revoked"], _hard(test_pki, cache)).signatures[0]
    assert (sig.verdict, sig.sub_indication) == (Verdict.INDETERMINATE, "TRY_LATER")


def test_check_crl_takes_only_crls_signed_by_a_configured_ca(test_pki, crls):
    cas = [test_pki.root_cert, test_pki.intermediate_cert]
    crl, issuer = check_crl(crls["interm"], cas)
    assert issuer.sha256 == test_pki.intermediate_cert.sha256
    assert crl.issuer == issuer.subject
    forged = bytearray(crls["interm"])
    forged[-5] ^= 0x01  # inside the signature value
    cases = [(bytes(forged), "CRL_SIGNATURE_INVALID"),
             (crls["interm"], "CRL_ISSUER_UNKNOWN", [test_pki.root_cert]),
             (b"<html>not a CRL</html>", "CRL_UNREADABLE")]
    for data, code, *only in cases:
        with pytest.raises(CrlRejected) as info:
            check_crl(data, only[0] if only else cas)
        assert info.value.code == code


def test_cache_keeps_the_newest_crl_per_issuer_and_refuses_rollback(test_pki, tmp_path):
    from datetime import timedelta

    from certomancer.registry import ServiceLabel

    repo = test_pki.arch.service_registry
    now = repo.get_crl(ServiceLabel("interm")).native["tbs_cert_list"]["this_update"]
    older = repo.get_crl(ServiceLabel("interm"), at_time=now - timedelta(days=7))
    newer = repo.get_crl(ServiceLabel("interm"), at_time=now)
    cache = RevocationCache(tmp_path)
    assert cache.update_crl(older) is True
    assert cache.update_crl(newer) is True  # replaces: one CRL of this issuer left
    assert [c.dump() for c in cache.crls] == [newer.dump()]
    assert cache.update_crl(asn1_crl.CertificateList.load(newer.dump())) is False
    with pytest.raises(CrlRejected) as info:
        cache.update_crl(older)
    assert info.value.code == "CRL_NOT_NEWER"
    assert [c.dump() for c in RevocationCache(tmp_path).crls] == [newer.dump()]  # on disk too


def test_cache_with_a_folder_ships_names_not_crls(test_pki, crls, tmp_path):
    cache = RevocationCache(tmp_path)
    for der in crls.values():
        cache.add_crl(der)
    wire = pickle.dumps(cache)
    assert len(wire) < 1024 < sum(map(len, crls.values()))
    copy = pickle.loads(wire)
    assert sorted(c.dump() for c in copy.crls) == sorted(crls.values())


async def test_pool_workers_see_a_cache_that_changed(docs, test_pki, crls, tmp_path):
    """The verifier cache key of the pool follows the cache's content: a CRL added after the
    first verification reaches the worker that already holds a verifier."""
    cache = RevocationCache(tmp_path)
    cache.add_crl(crls["root"])
    policy = _hard(test_pki, cache)
    async with SigningPool(max_workers=1) as pool:
        first = (await pool.verify(docs["revoked"], policy)).signatures[0]
        assert (first.verdict, first.sub_indication) == (Verdict.INDETERMINATE, "TRY_LATER")
        cache.update_crl(asn1_crl.CertificateList.load(crls["interm"]))
        second = (await pool.verify(docs["revoked"], policy)).signatures[0]
    assert second.verdict is Verdict.INVALID and second.reason == "REVOKED", second.to_json()
    assert second.revocation["source"] == "cache"
    assert second.revocation["reason"] == "key_compromise"
