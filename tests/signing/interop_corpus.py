"""An interoperability corpus: PDFs signed with the test PKI by signers other than pyHanko.

Producers (each one is skipped with a reason when its tool is missing):

* ``endesive`` (PyPI, pure Python on pypdf): ``adbe.pkcs7.detached``, its own incremental writer
  (it rewrites the catalog and AcroForm), certification via ``sigandcertify``.
* ``pdfsig`` (poppler-utils >= 21, Debian): ``pdfsig -add-signature`` signs from an NSS database
  into which the test PKI's PKCS#12 files are imported (``libnss3-tools``); no certification.
* ``pdfbox`` (Apache PDFBox 2 + BouncyCastle, Debian ``libpdfbox2-java``): the small Java program
  ``interop/PdfBoxSign.java``, compiled with ``javac`` once per session.

For each producer: ``one`` (officer), ``two`` (officer then the agency seal, Decree 30), ``cert``
(certification, DocMDP P=2) and ``cert_two`` (the seal signs the certified file) where the
producer can certify, and two attacks on ``two``:
``tampered_byte`` (one byte of the page content, inside every signed range) and
``tampered_update`` (an incremental update by pyHanko that replaces the page's content stream).
"""

from __future__ import annotations

import datetime
import importlib.util
import io
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from signing.testpki import TestPki

JAVA_SOURCE = Path(__file__).with_name("interop") / "PdfBoxSign.java"
JARS = ("pdfbox2", "fontbox2", "commons-logging", "bcprov", "bcpkix", "bcutil")
PAGE_TEXT = b"Interop test - page 1 of 1"
GENUINE = ("one", "two", "cert", "cert_two")
TAMPERED = ("tampered_byte", "tampered_update")


class ProducerMissing(Exception):
    """The producer's tool is not installed here (the reason is the message)."""


def _run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, timeout=120, **kw)


# -- endesive ----------------------------------------------------------------------------------
def _endesive_cms():
    """``endesive.pdf.cms`` without ``endesive.pdf``'s package import, which loads endesive's
    verifier (certvalidator/oscrypto: oscrypto 1.3.0 cannot parse this OpenSSL's version)."""
    spec = importlib.util.find_spec("endesive")
    if spec is None or spec.origin is None:
        raise ProducerMissing("endesive is not installed (pip install endesive)")
    path = Path(spec.origin).with_name("pdf") / "cms.py"
    mod_spec = importlib.util.spec_from_file_location("_interop_endesive_cms", path)
    assert mod_spec is not None and mod_spec.loader is not None
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module


def endesive_signer(pki: TestPki, work: Path) -> Callable[..., bytes]:
    from cryptography.hazmat.primitives.serialization import pkcs12

    cms = _endesive_cms()

    def sign(pdf: bytes, label: str, field: str, certify: int | None = None) -> bytes:
        key, cert, extra = pkcs12.load_key_and_certificates(
            pki.p12(label).read_bytes(), pki.p12_passphrase)
        now = datetime.datetime.now(datetime.UTC)
        udct = {"sigfield": field, "auto_sigfield": True, "sigflagsft": 132,
                "reason": "interop test", "location": "Ha Noi", "contact": label,
                "signingdate": now.strftime("D:%Y%m%d%H%M%S+00'00'"),
                # endesive uses 'sigflags' both as /SigFlags and as DocMDP /P
                "sigflags": certify or 3, "sigandcertify": certify is not None}
        return pdf + cms.sign(pdf, udct, key, cert, extra, "sha256")

    return sign


# -- poppler pdfsig ----------------------------------------------------------------------------
def nss_db(pki: TestPki, work: Path) -> Path:
    """An NSS database holding the officer's and the seal's keys and the trusted root."""
    for tool in ("certutil", "pk12util", "pdfsig"):
        if shutil.which(tool) is None:
            raise ProducerMissing(f"{tool} is not installed (libnss3-tools, poppler-utils)")
    db = work / "nss"
    if (db / "cert9.db").exists():
        return db
    db.mkdir(parents=True, exist_ok=True)
    _run(["certutil", "-N", "-d", f"sql:{db}", "--empty-password"])
    for label in ("officer", "seal"):
        _run(["pk12util", "-i", str(pki.p12(label)), "-d", f"sql:{db}",
              "-W", pki.p12_passphrase.decode(), "-K", ""])
    _run(["certutil", "-A", "-d", f"sql:{db}", "-n", "test-root", "-t", "CT,C,C",
          "-i", str(pki.pem("root"))])
    return db


def pdfsig_signer(pki: TestPki, work: Path) -> Callable[..., bytes]:
    help_text = subprocess.run(["pdfsig", "-h"], capture_output=True, text=True).stderr \
        if shutil.which("pdfsig") else ""
    if "-add-signature" not in help_text:
        raise ProducerMissing("pdfsig cannot sign (poppler-utils >= 21.x needed)")
    db = nss_db(pki, work)
    listed = subprocess.run(["pdfsig", "-nssdir", f"sql:{db}", "-list-nicks"],
                            capture_output=True, text=True, timeout=60).stdout.splitlines()
    nicks = {label: next(n.strip() for n in listed
                         if n.startswith(pki.cert(label).subject.native["common_name"]))
             for label in ("officer", "seal")}
    counter = iter(range(10**6))

    def sign(pdf: bytes, label: str, field: str, certify: int | None = None) -> bytes:
        if certify is not None:
            raise ProducerMissing("pdfsig cannot certify (no DocMDP option)")
        n = next(counter)
        src, dst = work / f"pdfsig-in-{n}.pdf", work / f"pdfsig-out-{n}.pdf"
        src.write_bytes(pdf)
        _run(["pdfsig", "-add-signature", "-nssdir", f"sql:{db}", "-nick", nicks[label],
              "-new-signature-field-name", field, "-reason", "interop test",
              str(src), str(dst)])
        return dst.read_bytes()

    return sign


def pdfsig_report(pdf: bytes, db: Path, work: Path) -> list[str]:
    """pdfsig's "Signature Validation" line per signature (its "Certificate Validation" is not
    read: poppler 22.12 reports a stale NSS error code even when the chain verifies)."""
    path = work / "pdfsig-check.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(["pdfsig", "-nssdir", f"sql:{db}", "-no-ocsp", str(path)],
                         capture_output=True, text=True, timeout=120).stdout
    return [line.split(":", 1)[1].strip() for line in out.splitlines()
            if "Signature Validation:" in line]


# -- Apache PDFBox -----------------------------------------------------------------------------
def pdfbox_signer(pki: TestPki, work: Path) -> Callable[..., bytes]:
    jars = [Path("/usr/share/java") / f"{name}.jar" for name in JARS]
    missing = [j.name for j in jars if not j.exists()]
    if shutil.which("javac") is None or shutil.which("java") is None:
        raise ProducerMissing("no Java compiler (openjdk-17-jdk-headless)")
    if missing:
        raise ProducerMissing(f"missing {', '.join(missing)} (libpdfbox2-java, libbcpkix-java)")
    classes = work / "pdfbox-classes"
    classpath = ":".join([str(classes), *map(str, jars)])
    if not (classes / "PdfBoxSign.class").exists():
        _run(["javac", "-d", str(classes), "-cp", classpath, str(JAVA_SOURCE)])
    counter = iter(range(10**6))

    def sign(pdf: bytes, label: str, field: str, certify: int | None = None) -> bytes:
        n = next(counter)
        src, dst = work / f"pdfbox-in-{n}.pdf", work / f"pdfbox-out-{n}.pdf"
        src.write_bytes(pdf)
        subfilter = "adbe.pkcs7.detached" if label == "officer" else "ETSI.CAdES.detached"
        cmd = ["java", "-cp", classpath, "PdfBoxSign", str(src), str(dst), str(pki.p12(label)),
               pki.p12_passphrase.decode(), field, subfilter]
        if certify is not None:
            cmd.append(str(certify))
        _run(cmd)
        return dst.read_bytes()

    return sign


PRODUCERS: dict[str, Callable[[TestPki, Path], Callable[..., bytes]]] = {
    "endesive": endesive_signer,
    "pdfsig": pdfsig_signer,
    "pdfbox": pdfbox_signer,
}


# -- attacks -----------------------------------------------------------------------------------
def tamper_byte(pdf: bytes) -> bytes:
    """One byte of the page's text changed: inside the signed range of every signature."""
    data = bytearray(pdf)
    pos = data.index(PAGE_TEXT)
    data[pos] ^= 0x01
    return bytes(data)


def tamper_update(pdf: bytes) -> bytes:
    """An incremental update (appended by pyHanko) that gives the page new content."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    page_ref = writer.root["/Pages"]["/Kids"][0]
    page = page_ref.get_object()
    content = b"BT /F1 24 Tf 72 700 Td (PAY 1,000,000,000 VND) Tj ET"
    page["/Contents"] = writer.add_object(generic.StreamObject(stream_data=content))
    writer.update_container(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def build(producer: str, pki: TestPki, plain: bytes, work: Path) -> dict[str, bytes | str]:
    """The corpus of one producer: name -> PDF, or name -> the reason it cannot be made."""
    work.mkdir(parents=True, exist_ok=True)
    sign = PRODUCERS[producer](pki, work)
    out: dict[str, bytes | str] = {}
    out["one"] = sign(plain, "officer", "Sig_officer")
    out["two"] = sign(out["one"], "seal", "Sig_seal")
    try:
        out["cert"] = sign(plain, "officer", "Sig_officer", certify=2)
    except ProducerMissing as exc:
        out["cert"] = str(exc)
    cert = out["cert"]
    out["cert_two"] = sign(cert, "seal", "Sig_seal") if isinstance(cert, bytes) else cert
    out["tampered_byte"] = tamper_byte(out["two"])  # type: ignore[arg-type]
    out["tampered_update"] = tamper_update(out["two"])  # type: ignore[arg-type]
    return out
