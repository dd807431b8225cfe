"""Hostile PDFs never take more than a job's memory, time or one worker (issue 11, item 1).

Each test sends a small file that, before the limits existed, made a worker grow until the
kernel killed something, or spin forever."""

from __future__ import annotations

import asyncio

import pytest

from signing.errors import PdfTimeoutError, PdfTooComplexError, PdfUnreadableError
from signing.pool import SigningPool
from signing.sign import SignRequest
from signing.verify import VerificationPolicy

from . import hostile_pdfs as hostile

#: A test that hangs on the old code fails here instead.
GIVE_UP = 45


@pytest.fixture(scope="module")
async def pool(key_config):
    p = SigningPool(max_workers=1, key_config_path=key_config, memory_mb=640, job_timeout=20)
    await p.call(abs, 1, limit=60)  # started and warm: the limits measure the job, not the start
    yield p
    p.close()


@pytest.fixture(scope="module")
def policy(test_pki):
    return VerificationPolicy(trust_roots=test_pki.trust_roots, offline=True)


async def bounded(awaitable):
    return await asyncio.wait_for(awaitable, GIVE_UP)


async def test_xref_bomb_is_refused_before_parsing(pool, policy):
    bomb = hostile.xref_stream_bomb()
    assert len(bomb) < 700
    with pytest.raises(PdfTooComplexError) as err:
        await bounded(pool.verify(bomb, policy))
    assert err.value.code == "PDF_TOO_COMPLEX"
    with pytest.raises(PdfTooComplexError):
        await bounded(pool.sign(bomb, SignRequest(role="competent_person"), "officer"))
    assert pool.restarts == 0  # refused by the declaration check: no worker was lost


async def test_plausible_looking_bomb_hits_the_memory_limit(pool, policy):
    """8 million declared entries in a 1 MB file pass the size check: the worker's address
    space limit stops it (or the time limit, on a slow machine), and the pool goes on."""
    bomb = hostile.xref_stream_bomb(declared=8_000_000, padding=1_100_000)
    with pytest.raises((PdfTooComplexError, PdfTimeoutError)):
        await bounded(pool.sign(bomb, SignRequest(role="competent_person"), "officer"))
    assert pool.restarts >= 1
    assert await pool.call(abs, -3, limit=60) == 3  # a fresh worker answers


async def test_parent_loop_does_not_pin_a_signing_worker(pool, plain_pdf):
    loop = hostile.parent_loop()
    with pytest.raises(PdfUnreadableError) as err:
        await bounded(pool.sign(loop, SignRequest(role="competent_person"), "officer"))
    assert "loop" in str(err.value) or "MediaBox" in str(err.value)


async def test_page_tree_loop_with_lying_count(pool, policy):
    pdf = hostile.kids_loop()
    with pytest.raises(PdfUnreadableError):
        await bounded(pool.sign(pdf, SignRequest(role="competent_person"), "officer"))
    report = await bounded(pool.verify(pdf, policy))  # nothing signed: a report, no hang
    assert report.signature_count == 0


@pytest.mark.parametrize("make", [hostile.nested_arrays, hostile.infinite_box])
async def test_nested_or_infinite_page_box_is_a_pdf_error(pool, make):
    with pytest.raises((PdfUnreadableError, PdfTooComplexError)):
        await bounded(pool.sign(make(), SignRequest(role="competent_person"), "officer"))


def spin() -> None:
    while True:
        pass


async def test_timeout_answers_and_the_next_job_runs(key_config, plain_pdf):
    p = SigningPool(max_workers=1, key_config_path=key_config, job_timeout=1.5)
    try:
        await p.call(abs, 1, limit=60)
        stuck = [asyncio.ensure_future(p.call(spin)) for _ in range(2)]
        results = await bounded(asyncio.gather(*stuck, return_exceptions=True))
        assert all(isinstance(r, PdfTimeoutError) for r in results)
        signed = await bounded(p.sign(plain_pdf, SignRequest(role="competent_person"),
                                      "officer"))
        assert signed.field_name == "CompetentPerson"
    finally:
        p.close()


@pytest.mark.parametrize("make", [hostile.acroform_not_a_dictionary,
                                  hostile.field_not_a_dictionary, hostile.kids_not_an_array])
async def test_structures_of_the_wrong_type_are_unreadable_not_a_crash(pool, policy, make):
    """Library exceptions no rule expected (TypeError, AttributeError…) are the input's
    PDF_UNREADABLE: never a 500, never a fault that makes intake fetch again forever."""
    pdf = make()
    with pytest.raises(PdfUnreadableError):
        await bounded(pool.sign(pdf, SignRequest(role="competent_person"), "officer"))
    try:
        report = await bounded(pool.verify(pdf, policy))
    except PdfUnreadableError:
        return
    assert report.signature_count == 0


@pytest.mark.parametrize("disguise", [
    b"/Size 0000000000000000000000002000000000", b"/Size +2000000000",
    b"/Size %a comment\n2000000000", b"/S#69ze 2000000000", b"/Siz#65\t2000000000",
    b"/Ind#65x [0 2000000000]", b"/Index [0 %c\r 2000000000]",
    b"/Index [" + b" " * 70_000 + b"0 2000000000]",
])
def test_declared_object_count_is_read_as_a_reader_reads_it(disguise):
    """Escaped names, comments, signs, leading zeros and padding do not hide a declaration
    (ISO 32000-1 §7.2.3, §7.3.3, §7.3.5): the check reads the value as a reader would."""
    from signing.errors import PdfTooComplexError
    from signing.pdfguard import check_declared_objects

    with pytest.raises(PdfTooComplexError):
        check_declared_objects(b"%PDF-1.5\n1 0 obj\n<< /Type /XRef " + disguise + b" >>\n")


def test_ordinary_uses_of_the_same_names_are_not_declarations():
    from signing.pdfguard import check_declared_objects

    check_declared_objects(b"%PDF-1.5\n<< /FunctionType 0 /Size [2000000000 2] >>"
                           b" [/Indexed /DeviceRGB 2000000000 <00>] /Sizes 2000000000"
                           b" /Size 12 /Index [0 12]")
