"""Interleaved A/B of one bench script across two checkouts (base vs new).

Runs SCRIPT [ARGS...] alternately from the base and the new checkout (base, new, base, new, ...),
``--runs`` times each, every run with that checkout's own ``.venv/bin/python`` and the checkout as
the working directory (so each imports its own code). Each run's stdout+stderr is streamed to
``/tmp/ab-<script>-<NN>-<label>.log``; after each run the lines matching ``--grep`` are printed.
Optionally waits until the 1-minute load average is below ``--max-load`` before each run.

    python bench/ab.py --base /work/wt-base --new /work/main --runs 3 \\
        --grep 'ratio|docs/s' bench/bench_verify.py --quick
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path


def wait_quiet(max_load: float, timeout: float = 600.0) -> None:
    """Sleep until the 1-minute load average is below max_load (or timeout passes)."""
    end = time.monotonic() + timeout
    while os.getloadavg()[0] >= max_load and time.monotonic() < end:
        print(f"  (load {os.getloadavg()[0]:.2f} >= {max_load}; waiting)", flush=True)
        time.sleep(30)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, required=True, help="checkout of the old code")
    ap.add_argument("--new", type=Path, required=True, help="checkout of the new code")
    ap.add_argument("--runs", type=int, default=3, help="runs per checkout")
    ap.add_argument("--grep", default="ratio|docs/s", help="regex of lines to print per run")
    ap.add_argument("--max-load", type=float, default=0.0, help="wait for loadavg below this")
    ap.add_argument("script", help="bench script, relative to each checkout")
    ap.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the script")
    a = ap.parse_args()
    pat = re.compile(a.grep)
    stem = Path(a.script).stem
    failed = 0
    for i in range(a.runs):
        for label, root in (("base", a.base), ("new", a.new)):
            if a.max_load > 0:
                wait_quiet(a.max_load)
            log = Path(f"/tmp/ab-{stem}-{i + 1:02d}-{label}.log")
            cmd = [str(root / ".venv/bin/python"), a.script, *a.args]
            load = os.getloadavg()[0]
            print(f"== run {i + 1} {label} ({root}) load={load:.2f} -> {log}", flush=True)
            t0 = time.monotonic()
            with log.open("w") as out:
                rc = subprocess.run(cmd, cwd=root, stdout=out, stderr=subprocess.STDOUT).returncode
            dt = time.monotonic() - t0
            for line in log.read_text(errors="replace").splitlines():
                if pat.search(line):
                    print(f"  {line}")
            print(f"  -- rc={rc} in {dt:.0f}s", flush=True)
            failed += rc != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
