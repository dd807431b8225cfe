"""B-B signing speed and memory: ours vs stock pyHanko vs the raw ``cryptography`` floor.

Run: ``.venv/bin/python bench/bench_sign.py`` (about a minute). All baselines are measured in this
process on the same PDFs and the same RSA-2048 PKCS#12 key from the test PKI:

* stock  = ``signers.SimpleSigner.load_pkcs12`` + ``signers.sign_pdf`` per document (what a
  naive service does: key re-parsed per signature, dry-run signature sizing);
* ours   = ``signing.sign.sign_pdf`` with a cached ``Pkcs12KeySource`` (invisible and visible);
* floor  = ``cryptography`` RSA PKCS#1 v1.5 signature of a digest (the crypto itself).

Then the first attachment stamp of a process (font subset not cached yet), peak memory growth
(tracemalloc) signing a ~100 MB PDF in memory (``sign_pdf``) and file to file
(``sign_pdf_file``), and a cProfile of our signing.
"""

from __future__ import annotations

import cProfile
import gc
import io
import pstats
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.serialization import pkcs12
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers

from signing import fonts
from signing.keys import KeyAlias, Pkcs12KeySource, SignerRole
from signing.sign import SignRequest, sign_pdf, sign_pdf_file
from signing.testpki import build_test_pki
from signing.testpki.pdfs import make_pdf

ROUNDS = 30


def timeit(fn, docs) -> float:
    fn(docs[0])  # warm up
    samples = []
    for i in range(ROUNDS):
        t = time.perf_counter()
        fn(docs[i % len(docs)])
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-sign-"))
    pki = build_test_pki(folder)
    p12 = pki.p12("seal")
    (folder / "pass").write_bytes(pki.p12_passphrase + b"\n")
    source = Pkcs12KeySource(
        KeyAlias("seal", SignerRole.AGENCY, "H01", path=p12, passphrase_file=folder / "pass")
    )
    docs = [make_pdf(1, "Công văn"), make_pdf(5, "Báo cáo"), make_pdf(20, "Hồ sơ")]

    def stock(pdf: bytes) -> bytes:
        signer = signers.SimpleSigner.load_pkcs12(str(p12), passphrase=pki.p12_passphrase)
        meta = signers.PdfSignatureMetadata(
            field_name="Sig", md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES
        )
        w = IncrementalPdfFileWriter(io.BytesIO(pdf))
        return signers.sign_pdf(w, meta, signer=signer).getvalue()

    invisible = SignRequest(role="agency", visible=False)
    attachment = SignRequest(role="attachment", document_number="12/UBND")

    def ours(pdf: bytes) -> bytes:
        return sign_pdf(pdf, invisible, source).data

    def ours_visible(pdf: bytes) -> bytes:
        return sign_pdf(pdf, attachment, source).data

    key, _, _ = pkcs12.load_key_and_certificates(p12.read_bytes(), pki.p12_passphrase)

    def floor(pdf: bytes) -> bytes:
        return key.sign(pdf[:32], PKCS1v15(), hashes.SHA256())

    fonts.subset_font_file.cache_clear()
    t = time.perf_counter()
    ours_visible(docs[0])
    t_cold = time.perf_counter() - t
    t_stock = timeit(stock, docs)
    t_ours = timeit(ours, docs)
    t_vis = timeit(ours_visible, docs)
    t_floor = timeit(floor, docs)
    print(f"median of {ROUNDS} B-B signatures (1/5/20-page PDFs, RSA-2048 PKCS#12):")
    print(f"  stock pyHanko (load_pkcs12 + sign_pdf) {t_stock * 1000:7.1f} ms   1.00x")
    print(f"  ours, invisible                        {t_ours * 1000:7.1f} ms  "
          f"{t_stock / t_ours:5.2f}x faster than stock")  # fmt: skip
    print(f"  ours, attachment text stamp            {t_vis * 1000:7.1f} ms  "
          f"{t_stock / t_vis:5.2f}x faster than stock")  # fmt: skip
    print(f"  first attachment stamp of a process    {t_cold * 1000:7.1f} ms  "
          "(builds the cached font subset)")  # fmt: skip
    print(f"  raw cryptography RSA sign (floor)      {t_floor * 1000:7.1f} ms  "
          f"ours = {t_ours / t_floor:5.1f}x floor")  # fmt: skip

    # memory: ~100 MB PDF
    big = make_pdf(1, "Big", filler_bytes=100 * 1024 * 1024)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    signed = sign_pdf(big, invisible, source).data
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    print(
        f"100 MB PDF ({len(big) / 1e6:.0f} MB): peak memory growth {peak / 1e6:.0f} MB = "
        f"{peak / len(big):.2f}x its size (target <= 2x); output {len(signed) / 1e6:.0f} MB"
    )
    src, dst = folder / "big.pdf", folder / "big-signed.pdf"
    src.write_bytes(big)
    size = len(big)
    del big, signed
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    result = sign_pdf_file(src, dst, invisible, source)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    print(
        f"100 MB PDF file to file (sign_pdf_file): peak memory growth {peak / 1e6:.1f} MB = "
        f"{peak / size:.3f}x its size; output {result.size / 1e6:.0f} MB"
    )

    prof = cProfile.Profile()
    prof.enable()
    for i in range(20):
        ours(docs[i % len(docs)])
    prof.disable()
    print("where our B-B time goes (cProfile, 20 signatures, top by cumulative time):")
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(18)
    lines = [ln for ln in out.getvalue().splitlines() if ln.strip()]
    start = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls"))
    print("\n".join(lines[start : start + 19]))
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(10)
    lines = [ln for ln in out.getvalue().splitlines() if ln.strip()]
    start = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls"))
    print("top by own time:")
    print("\n".join(lines[start : start + 11]))


if __name__ == "__main__":
    main()
