"""SigningPool: work runs in other processes, keys configured by alias, bounded queue."""

from __future__ import annotations

import asyncio
import io
import os

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from signing.pool import PoolOverloaded, SigningPool
from signing.sign import SignRequest


@pytest.fixture(scope="module")
def key_config(test_pki, tmp_path_factory):
    folder = tmp_path_factory.mktemp("poolkeys")
    (folder / "p12.pass").write_bytes(test_pki.p12_passphrase + b"\n")
    cfg = folder / "keys.json"
    cfg.write_text(
        '{"keys": {'
        f'"officer": {{"role": "competent_person", "owner": "A",'
        f' "path": "{test_pki.p12("officer")}",'
        ' "passphrase_file": "p12.pass"},'
        f'"seal": {{"role": "agency", "owner": "H01", "path": "{test_pki.p12("seal")}",'
        ' "passphrase_file": "p12.pass"}}}'
    )
    return cfg


@pytest.fixture(scope="module")
async def pool(key_config):
    p = SigningPool(max_workers=1, key_config_path=key_config, max_pending=2)
    yield p
    p.close()


async def test_pool_signs_in_another_process(pool, test_pki, plain_pdf):
    pid = await pool.worker_pid()
    assert pid != os.getpid()
    first = await pool.sign(plain_pdf, SignRequest(role="competent_person"), "officer")
    second = await pool.sign(
        first.data, SignRequest(role="agency", document_number="5/UBND"), "seal"
    )
    reader = PdfFileReader(io.BytesIO(second.data))
    assert [s.field_name for s in reader.embedded_regular_signatures] == [
        "CompetentPerson",
        "AgencySeal",
    ]
    for sig in reader.embedded_regular_signatures:
        vc = ValidationContext(
            trust_roots=test_pki.trust_roots, allow_fetching=False, revocation_mode="soft-fail"
        )
        assert (await async_validate_pdf_signature(sig, vc)).bottom_line


async def test_pool_errors_keep_their_code(pool, plain_pdf):
    from signing.keys import UnknownKeyAlias
    from signing.pool import RoleNotAllowed

    with pytest.raises(UnknownKeyAlias) as err:
        await pool.sign(plain_pdf, SignRequest(role="agency"), "nobody")
    assert err.value.code == "KEY_UNKNOWN_ALIAS"
    with pytest.raises(RoleNotAllowed) as err:
        await pool.sign(plain_pdf, SignRequest(role="agency"), "officer")
    assert err.value.code == "KEY_ROLE_MISMATCH"


async def test_pool_rejects_when_overloaded(pool, plain_pdf):
    req = SignRequest(role="competent_person")
    jobs = [asyncio.ensure_future(pool.sign(plain_pdf, req, "officer")) for _ in range(4)]
    results = await asyncio.gather(*jobs, return_exceptions=True)
    rejected = [r for r in results if isinstance(r, PoolOverloaded)]
    done = [r for r in results if not isinstance(r, BaseException)]
    assert len(done) == 2 and len(rejected) == 2
    assert rejected[0].code == "POOL_OVERLOADED"
    assert pool.pending == 0


async def test_pool_verifies_in_worker(pool, test_pki, plain_pdf):
    from signing.verify import VerificationPolicy

    signed = await pool.sign(plain_pdf, SignRequest(role="competent_person"), "officer")
    policy = VerificationPolicy(trust_roots=test_pki.trust_roots, offline=True)
    report = await pool.verify(signed.data, policy)
    assert report.signature_count == 1
    assert report.integrity_ok
