"""Verification throughput: stock pyHanko ``validate_pdf_signature`` vs ``signing.verify``.

Same PDFs (1-page and 20-page, signed B-B and B-T by the test PKI; a 1-page PDF signed twice, so
that the difference analysis runs), same trust roots, offline,
one process. Prints docs/s, the ratio, an identical-verdict check, peak memory growth when
verifying a ~100 MB PDF (in a subprocess, ru_maxrss), and cProfile top entries of ours.
Run: ``.venv/bin/python bench/bench_verify.py [--quick]``.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature, validate_pdf_timestamp
from pyhanko_certvalidator import ValidationContext

from signing.report import Verdict
from signing.testpki import build_test_pki
from signing.testpki.pdfs import make_pdf
from signing.testpki.samples import sign_sample
from signing.verify import VerificationPolicy, Verifier, fastpath

QUICK = "--quick" in sys.argv
ROUNDS = 15 if QUICK else 60


def stock_verdict(pdf: bytes, roots) -> bool:
    """Stock pyHanko: every signature's bottom_line, via the classic API."""
    r = PdfFileReader(io.BytesIO(pdf))
    ok = True
    for sig in r.embedded_signatures:
        vc = ValidationContext(trust_roots=roots)
        if sig.sig_object_type == "/DocTimeStamp":
            st = validate_pdf_timestamp(sig, vc)
            ok = ok and st.valid and st.intact and st.trusted
        else:
            st = validate_pdf_signature(sig, vc)
            ok = ok and st.bottom_line
    return ok


def rate(fn, docs, rounds) -> float:
    fn(docs[0])  # warm-up
    t0 = time.perf_counter()
    for _ in range(rounds):
        for d in docs:
            fn(d)
    return rounds * len(docs) / (time.perf_counter() - t0)


async def make_docs(pki):
    out = {}
    async with pki.serve_session() as s:
        for pages in (1, 20):
            pdf = make_pdf(pages, "Benchmark document")
            out[f"{pages}p B-B"] = await sign_sample(pdf, pki, "officer", level="B-B")
            out[f"{pages}p B-T"] = await sign_sample(pdf, pki, "officer", level="B-T", session=s)
        # Decree 30: competent person, then agency; the first signature's later revision goes
        # through the difference analysis (stock DEFAULT_DIFF_POLICY vs GatewayDiffPolicy)
        out["1p 2 sigs"] = await sign_sample(out["1p B-B"], pki, "seal", level="B-B")
        bad = bytearray(out["1p B-T"])
        bad[bad.index(b"page 1 of 1")] ^= 1
        out["1p tampered"] = bytes(bad)
        out["1p stranger"] = await sign_sample(make_pdf(1), pki, "stranger", level="B-B")
    return out


MEM_CHILD = r"""
import resource, sys, tracemalloc
from pathlib import Path
from signing.testpki import build_test_pki
from signing.verify import VerificationPolicy, Verifier
pki = build_test_pki(Path(sys.argv[1]))
data = Path(sys.argv[2]).read_bytes()
v = Verifier(VerificationPolicy(trust_roots=pki.trust_roots, offline=True))
tracemalloc.start()
base = tracemalloc.get_traced_memory()[0]
r = v.verify(data)
peak = tracemalloc.get_traced_memory()[1]
print(base // 1024, peak // 1024, r.verdict.value,
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-verify-"))
    pki = build_test_pki(tmp)
    docs = asyncio.run(make_docs(pki))
    roots = pki.trust_roots
    policy = VerificationPolicy(trust_roots=roots, offline=True)
    verifier = Verifier(policy)

    print("identical verdicts (stock bottom_line vs ours valid):")
    for name, d in docs.items():
        fastpath.uninstall()
        stock = stock_verdict(d, roots)
        fastpath.install()
        ours = verifier.verify(d).verdict is Verdict.VALID
        same = "OK" if stock == ours else "DIFF"
        print(f"  {name:14s} stock={stock!s:5s} ours={ours!s:5s} {same}")

    print(f"\nthroughput ({ROUNDS} rounds per document):")
    for name in ("1p B-B", "1p B-T", "20p B-B", "20p B-T", "1p 2 sigs"):
        d = [docs[name]]
        fastpath.uninstall()
        s = rate(lambda x: stock_verdict(x, roots), d, ROUNDS)
        fastpath.install()
        o = rate(verifier.verify, d, ROUNDS)
        print(f"  {name:8s} stock {s:6.1f} docs/s   ours {o:6.1f} docs/s   ratio {o / s:4.2f}x")

    print("\nwhere our time goes (1p B-T, cProfile, top 12 by cumulative own time):")
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(ROUNDS):
        verifier.verify(docs["1p B-T"])
    prof.disable()
    stats = pstats.Stats(prof)
    stats.sort_stats("tottime").print_stats(12)

    if not QUICK:
        big = make_pdf(3, "Large", filler_bytes=100 * 1024 * 1024)
        signed = asyncio.run(sign_sample(big, pki, "officer", level="B-B"))
        path = tmp / "big.pdf"
        path.write_bytes(signed)
        del big, signed
        out = subprocess.run([sys.executable, "-c", MEM_CHILD, str(tmp), str(path)],
                             capture_output=True, text=True, check=True).stdout.split()
        before, after = int(out[0]), int(out[1])
        size_mb = path.stat().st_size / 2**20
        growth = (after - before) / 1024
        print(f"\n~100 MB PDF ({size_mb:.0f} MiB): verdict {out[2]}; peak traced allocation "
              f"during verification {growth:.0f} MiB = {growth / size_mb:.2f}x the file size "
              f"(input bytes already in memory; process max RSS {int(out[3]) / 1024:.0f} MiB)")


if __name__ == "__main__":
    main()
