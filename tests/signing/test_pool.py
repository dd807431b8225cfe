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


async def test_worker_reuses_its_verifier_per_policy(pool, test_pki, plain_pdf):
    from signing.verify import VerificationPolicy

    signed = await pool.sign(plain_pdf, SignRequest(role="competent_person"), "officer")
    policy = VerificationPolicy(trust_roots=test_pki.trust_roots, offline=True)
    before = await pool.worker_stats()
    first = await pool.verify(signed.data, policy)
    second = await pool.verify(
        signed.data, VerificationPolicy(trust_roots=test_pki.trust_roots, offline=True)
    )  # equal policy, another object
    after = await pool.worker_stats()
    assert after["pid"] == before["pid"]  # one worker: both ran there
    assert after["misses"] - before["misses"] <= 1  # built at most once (maybe cached earlier)
    assert after["hits"] - before["hits"] >= 1
    assert [s.verdict for s in first.signatures] == [s.verdict for s in second.signatures]
    other = VerificationPolicy(trust_roots=test_pki.trust_roots, offline=True,
                               revocation_mode="hard-fail")  # fmt: skip
    await pool.verify(signed.data, other)
    assert (await pool.worker_stats())["misses"] == after["misses"] + 1


def crash_once(marker: str) -> int:
    """Kill the worker the first time (marker file absent), answer its pid the second."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(3)
    return os.getpid()


def crash_always() -> None:
    os._exit(3)


async def test_dead_worker_restarts_pool_and_retries_once(key_config, plain_pdf, tmp_path):
    from signing.pool import WorkerCrashed

    p = SigningPool(max_workers=1, key_config_path=key_config)
    try:
        first_pid = await p.worker_pid()
        pid = await p.call(crash_once, str(tmp_path / "crashed"))
        assert (tmp_path / "crashed").exists() and pid != first_pid
        assert p.restarts == 1
        with pytest.raises(WorkerCrashed) as err:
            await p.call(crash_always)
        assert err.value.code == "POOL_WORKER_CRASHED"
        assert p.restarts == 3  # once per broken executor, the retry included
        signed = await p.sign(plain_pdf, SignRequest(role="competent_person"), "officer")
        assert signed.field_name == "CompetentPerson"  # the pool still works
        assert p.pending == 0
    finally:
        p.close()
