"""Shared fixtures of the signing tests: the test PKI (built once per session), an in-process
served aiohttp session for real CRL/OCSP/TSA traffic, and sample PDFs."""

from __future__ import annotations

import pytest
import pytest_asyncio

from signing.testpki import TestPki, build_test_pki
from signing.testpki.pdfs import make_pdf


@pytest.fixture(scope="session")
def test_pki_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("testpki")


@pytest.fixture(scope="session")
def test_pki(test_pki_folder) -> TestPki:
    """RSA test PKI (gov-rsa): officer, seal, revoked, expired, stranger, TSA."""
    return build_test_pki(test_pki_folder, arch="gov-rsa")


@pytest.fixture(scope="session")
def ec_pki(test_pki_folder) -> TestPki:
    """EC (P-256) test PKI (gov-ec), same shape as ``test_pki``."""
    return build_test_pki(test_pki_folder, arch="gov-ec")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def pki_session(test_pki):
    """aiohttp ClientSession answering ``http://pki.test/...`` in-process for ``test_pki``."""
    async with test_pki.serve_session() as session:
        yield session


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def ec_pki_session(ec_pki):
    async with ec_pki.serve_session() as session:
        yield session


@pytest.fixture(scope="session")
def plain_pdf() -> bytes:
    """A valid one-page PDF with text content."""
    return make_pdf(1, "Công văn thử nghiệm")


@pytest.fixture(scope="session")
def multipage_pdf() -> bytes:
    return make_pdf(5, "Multi-page test document")


@pytest.fixture(scope="session")
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
