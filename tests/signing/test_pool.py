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


def crash_always() -> None:
    os._exit(3)


def spin_forever() -> None:
    while True:
        pass


def allocate(megabytes: int) -> int:
    return len(bytearray(megabytes * 1024 * 1024))


def count_runs(marker: str) -> int:
    """Append a line to ``marker`` (how many times the job ran), then die."""
    with open(marker, "a") as fh:
        fh.write("run\n")
    os._exit(3)


async def test_a_job_that_kills_its_worker_runs_once(key_config, plain_pdf, tmp_path):
    from signing.pool import WorkerCrashed

    p = SigningPool(max_workers=1, key_config_path=key_config)
    try:
        first_pid = await p.worker_pid()
        marker = tmp_path / "runs"
        with pytest.raises(WorkerCrashed) as err:
            await p.call(count_runs, str(marker))
        assert err.value.code == "POOL_WORKER_CRASHED"
        assert marker.read_text().count("run") == 1  # never retried: a poison job runs once
        assert p.restarts == 1
        assert await p.worker_pid() != first_pid  # a fresh worker took its place
        signed = await p.sign(plain_pdf, SignRequest(role="competent_person"), "officer")
        assert signed.field_name == "CompetentPerson"  # the pool still works
        assert p.pending == 0
    finally:
        p.close()


async def test_a_job_over_its_time_limit_is_killed_and_answered(key_config, tmp_path):
    from signing.errors import PdfTimeoutError

    p = SigningPool(max_workers=1, key_config_path=key_config, job_timeout=1.0)
    try:
        pid = await p.call(os.getpid, limit=60)  # started and warm
        with pytest.raises(PdfTimeoutError) as err:
            await p.call(spin_forever)
        assert err.value.code == "PDF_TIMEOUT"
        assert p.timeouts == 1
        await asyncio.sleep(0.2)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # the stuck worker is gone, not left spinning
        assert await p.call(os.getpid, limit=60) != pid
    finally:
        p.close()


async def test_a_job_over_its_memory_limit_is_answered_too_complex(key_config):
    from signing.errors import PdfTooComplexError

    p = SigningPool(max_workers=1, key_config_path=key_config, memory_mb=1024)
    try:
        assert await p.call(allocate, 16, limit=60) == 16 * 1024 * 1024
        with pytest.raises(PdfTooComplexError) as err:
            await p.call(allocate, 4096)
        assert err.value.code == "PDF_TOO_COMPLEX"
        assert await p.call(allocate, 16, limit=60) == 16 * 1024 * 1024  # usable afterwards
    finally:
        p.close()


async def test_intake_is_served_before_api_and_api_never_takes_the_reserved_worker(key_config):
    p = SigningPool(max_workers=2, key_config_path=key_config, reserved_for_intake=1,
                    max_pending=16)
    try:
        # both workers started (two intake jobs at once)
        await asyncio.gather(*(p.call(time_sleep, 0.3, lane="intake", limit=60)
                               for _ in range(2)))
        assert p.api_capacity == 1
        api = [asyncio.ensure_future(p.call(time_sleep, 1.0)) for _ in range(4)]
        await asyncio.sleep(0.1)
        assert p.busy == 1 and p.queued("api") == 3  # the second worker stays free for intake
        assert await p.call(time_sleep, 0.0, lane="intake") == 0.0
        assert sum(job.done() for job in api) == 0  # intake did not wait behind the API jobs
        assert p.queued("api") == 3
        await asyncio.gather(*api)
    finally:
        p.close()


def time_sleep(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


async def test_close_kills_a_busy_worker_at_once(key_config):
    p = SigningPool(max_workers=1, key_config_path=key_config, job_timeout=600)
    pid = await p.call(os.getpid, limit=60)
    job = asyncio.ensure_future(p.call(spin_forever))
    await asyncio.sleep(0.3)
    started = asyncio.get_running_loop().time()
    await asyncio.get_running_loop().run_in_executor(None, p.close)
    assert asyncio.get_running_loop().time() - started < 5
    with pytest.raises(Exception):  # noqa: B017 - PoolClosed or WorkerCrashed
        await job
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_a_worker_killed_while_idle_does_not_fail_the_next_job(key_config):
    """SIGKILL between jobs (the OOM killer, an operator): the next job never reached that
    process, so it runs on a fresh worker instead of failing as if its PDF had crashed it."""
    import signal

    p = SigningPool(max_workers=1, key_config_path=key_config)
    try:
        pid = await p.call(os.getpid, limit=60)
        os.kill(pid, signal.SIGKILL)
        assert await p.call(abs, -7) == 7
        assert pid not in p.worker_pids()
    finally:
        p.close()


async def test_workers_that_cannot_start_are_the_pools_fault(tmp_path):
    from signing.pool import PoolUnavailable

    broken = tmp_path / "keys.json"
    broken.write_text("{not json")
    p = SigningPool(max_workers=1, key_config_path=broken)
    try:
        with pytest.raises(PoolUnavailable) as err:
            await p.call(abs, 1)
        assert err.value.code == "POOL_UNAVAILABLE"
        assert p.health()["problem"] == "workers cannot start"
    finally:
        p.close()
