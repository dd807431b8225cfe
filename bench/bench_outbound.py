"""Outbound throughput and latency: ``POST /v1/outbound`` with agency sealing on SoftHSM (issue 13).

The gateway runs as deployed (``python -m gateway --config FILE serve``, its own process) serving
one district (``DISTRICT1``) whose ``seal_key`` is an agency seal on a SoftHSM token (made in a
child process before anything here could load the PKCS#11 module; ``SOFTHSM2_CONF`` is given to
the gateway and to the ceiling's pool). This process hosts the VDXP axis simulator (the city,
the receiver) and the district's eOffice, which posts documents signed by its competent person
(~``--pdf-kb`` KB PDFs, number and date fields prepared, signed here with the PKCS#12 officer key).

Measured in interleaved rounds (the machine is noisy; the figure that matters is the ratio):

* **sealing ceiling**: the same PDFs sealed with the same key and the same request the
  submission makes (role ``agency``, number, date, reason, place), straight through a
  ``SigningPool`` of ``--workers`` processes with the gateway's key file: what the sign_with
  path costs alone, without HTTP, verification, edXML, storage or the axis;
* **outbound burst**: ``--docs`` submissions, ``--concurrency`` in flight, from the first POST
  until the axis simulator has accepted the last copy (stamped inside the simulator when it
  queues the copy, matched by DocumentId).

Then a paced run at half the best burst rate for ``--paced-seconds``: latency = the axis
accepted the copy − the POST began. CPU per document (gateway process, its pool processes,
PostgreSQL, RabbitMQ, this harness) from /proc, as in ``bench_e2e.py``. ``--profile FILE``
runs the gateway under cProfile for the whole bench and prints where its main process spends
its time (the pool processes' CPU is in the CPU line).

    .venv/bin/python bench/bench_outbound.py [--docs 60] [--rounds 3] [--paced-seconds 15]

Own database (``edoc_bench_out_*``) and RabbitMQ prefix (``benchout*``), both removed.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import pstats
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_e2e import AMQP_URL, PG, CpuMeter, pct, wait_ready  # reuse: same folder

SEAL = "seal-hsm"
_DOCUMENT_ID = re.compile(rb"<edXML:DocumentId>([^<]{1,300})</edXML:DocumentId>")


def write_keys(folder: Path, pki, token) -> Path:
    (folder / "p12.pass").write_bytes(pki.p12_passphrase + b"\n")
    path = folder / "keys.toml"
    path.write_text(
        f'[keys.officer]\nrole = "competent_person"\nowner = "Nguyễn Văn A"\n'
        f'path = "{pki.p12("officer")}"\npassphrase_file = "p12.pass"\n\n'
        f'[keys.{SEAL}]\nrole = "agency"\nowner = "000.00.01.H99"\nsource = "pkcs11"\n'
        f'module = "{token.module}"\ntoken_label = "{token.label}"\nkey_label = "seal"\n'
        f'cert_label = "seal"\npin_file = "{token.pin_file}"\n', encoding="utf-8")
    return path


def gateway_toml(args, *, dsn: str, port: int, prefix: str, pki, keys: Path,
                 axis_url: str) -> str:
    from gateway.demo.exchange import DISTRICT1 as D

    q = json.dumps
    return "\n".join([
        f"database_url = {q(dsn)}", f"amqp_url = {q(AMQP_URL)}", 'http_host = "127.0.0.1"',
        f"http_port = {port}", 'organ_id = "gateway.bench"', 'log_level = "WARNING"',
        "[bus]", f"prefix = {q(prefix)}", "[relay]", "poll_interval = 0.05",
        "[signing]", f"trust_bundles = [{q(str(pki.trust_bundle_path))}]", "offline = true",
        f"workers = {args.workers}", f"keys_file = {q(str(keys))}",
        f"revocation_cache_dir = {q(str(pki.crl_cache()))}", "crl_refresh_interval = 0",
        "key_check_interval = 0", "rate_per_token = 0", "rate_per_key = 0",
        "[[agencies]]", f"code = {q(D.organ_id)}", f"name = {q(D.name)}", 'axis = "q1"',
        f"seal_key = {q(SEAL)}", "seal = true",
        "[[axis]]", 'name = "q1"', f"endpoint = {q(axis_url)}", f"system_id = {q(D.system_id)}",
        f"secret = {q(D.secret)}", f"organ_id = {q(D.organ_id)}", "poll_interval = 0.5",
        "timeout = 10"]) + "\n"


def metadata(number: int, today) -> dict:
    from gateway.demo.exchange import CITY, DISTRICT1

    return {"from": DISTRICT1.organ_id, "to": [CITY.organ_id], "code_number": str(number),
            "code_notation": "BC-UBND", "promulgation_place": "Quận Một",
            "promulgation_date": f"{today:%Y/%m/%d}", "document_type": 2,
            "type_name": "Báo cáo", "subject": f"Báo cáo số {number}", "priority": 0,
            "signer": {"full_name": "Nguyễn Văn A", "competence": "TM. ỦY BAN NHÂN DÂN",
                       "position": "Chủ tịch"}, "seal": True}


def seal_request(meta: dict):
    """The request :mod:`gateway.outbound.submission` seals the main PDF with."""
    from signing.keys import SignerRole
    from signing.sign import SignRequest

    y, m, d = (int(x) for x in meta["promulgation_date"].split("/"))
    return SignRequest(role=SignerRole.AGENCY,
                       document_number=f"{meta['code_number']}/{meta['code_notation']}",
                       document_date=f"ngày {d:02d} tháng {m:02d} năm {y}",
                       reason="Ban hành văn bản", location=meta["promulgation_place"])


def officer_pdfs(pki, folder: Path, count: int, size: int) -> list[bytes]:
    """PDFs signed by the competent person (number and date fields prepared), random filler
    (a real PDF's streams are compressed)."""
    from signing.keys import KeyAlias, Pkcs12KeySource, SignerRole
    from signing.sign import SignRequest, sign_pdf
    from signing.testpki.pdfs import make_pdf

    source = Pkcs12KeySource(KeyAlias("officer", SignerRole.COMPETENT_PERSON, "Nguyễn Văn A",
                                      path=pki.p12("officer"),
                                      passphrase_file=folder / "p12.pass"))
    req = SignRequest(role=SignerRole.COMPETENT_PERSON, signer_name="Nguyễn Văn A",
                      signer_position="Chủ tịch")
    filler = max(0, size - 12_000)
    out = []
    for i in range(count):
        pdf = make_pdf(1, f"Bao cao so {i + 1}", filler_bytes=filler)
        ramp = (bytes(range(256)) * (filler // 256 + 1))[:filler]
        if filler:
            at = pdf.index(ramp)
            pdf = pdf[:at] + os.urandom(filler) + pdf[at + filler:]
        out.append(sign_pdf(pdf, req, source).data)
    return out


class Ceiling:
    """Sealing alone: the gateway's key file, ``--workers`` pool processes."""

    def __init__(self, workers: int, keys: Path) -> None:
        from signing.pool import SigningPool

        self.pool = SigningPool(max_workers=workers, key_config_path=keys)
        self.slots = asyncio.Semaphore(2 * workers)

    async def run(self, pdfs: list[bytes], metas: list[dict]) -> tuple[float, float]:
        """docs/s, and the pool's CPU per document in ms."""
        async def one(pdf: bytes, meta: dict) -> None:
            async with self.slots:
                await self.pool.sign(pdf, seal_request(meta), SEAL)

        with CpuMeter(os.getpid()) as cpu:  # its "pool": this process's children
            start = time.perf_counter()
            await asyncio.gather(*(one(pdfs[i % len(pdfs)], m) for i, m in enumerate(metas)))
            rate = len(metas) / (time.perf_counter() - start)
        return rate, cpu.ms_per_doc("pool", len(metas))

    def close(self) -> None:
        self.pool.close()


class Outbound:
    """The gateway process, the axis simulator (accepted copies stamped), the eOffice client."""

    def __init__(self, args, pki, keys: Path) -> None:
        self.args, self.pki, self.keys = args, pki, keys
        self.accepted: dict[str, float] = {}  # DocumentId -> when the axis queued the copy

    async def __aenter__(self) -> Outbound:
        import aiohttp

        from gateway.api.auth import create_client
        from gateway.axis.simulator import AxisSimulator
        from gateway.db.migrate import migrate
        from gateway.db.pool import connect, ensure_database, with_database
        from gateway.demo.exchange import CITY, DISTRICT1, free_port

        tag = uuid.uuid4().hex[:8]
        self.dsn = with_database(PG, f"edoc_bench_out_{tag}")
        self.prefix = f"benchout{tag}"
        self.proc = self.axis = self.http = None
        await ensure_database(self.dsn)
        conn = await connect(self.dsn)
        try:
            await migrate(conn)
            token = (await create_client(conn, name="eoffice bench", role="eoffice",
                                         agencies=[DISTRICT1.organ_id])).token
        finally:
            await conn.close()
        self.headers = {"Authorization": f"Bearer {token}"}
        self.axis = AxisSimulator([CITY, DISTRICT1])
        await self.axis.start()
        submit = self.axis.state.submit

        def stamped(data_for, **kw):
            result = submit(data_for, **kw)
            if kw.get("message_type") == "edoc":
                for data in data_for.values():
                    if m := _DOCUMENT_ID.search(data):
                        self.accepted.setdefault(m.group(1).decode(), time.perf_counter())
            return result

        self.axis.state.submit = stamped
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        folder = Path(tempfile.mkdtemp(prefix="bench-out-gw-"))
        self.cfg = folder / "gateway.toml"
        self.cfg.write_text(gateway_toml(self.args, dsn=self.dsn, port=port, prefix=self.prefix,
                                         pki=self.pki, keys=self.keys,
                                         axis_url=self.axis.base_url), encoding="utf-8")
        cmd = [sys.executable, "-m", "gateway", "--config", str(self.cfg), "serve"]
        if self.args.profile:
            cmd[1:1] = ["-m", "cProfile", "-o", self.args.profile]
        log_fd = os.open(folder / "gateway.log", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *cmd, stdout=subprocess.DEVNULL, stderr=log_fd,
                env={k: v for k, v in os.environ.items() if not k.startswith("EDOC_")})
        finally:
            os.close(log_fd)
        self.http = aiohttp.ClientSession()
        await wait_ready(self.http, self.url, self.proc, folder / "gateway.log")
        return self

    async def submit(self, pdf: bytes, meta: dict) -> tuple[str, float]:
        """POST one document; (DocumentId, when the POST began)."""
        import aiohttp

        form = aiohttp.FormData()
        form.add_field("metadata", json.dumps(meta, ensure_ascii=False).encode(),
                       content_type="application/json")
        form.add_field("file", pdf, filename="bao-cao.pdf", content_type="application/pdf")
        t0 = time.perf_counter()
        async with self.http.post(f"{self.url}/v1/outbound", data=form,
                                  headers=self.headers) as resp:
            body = await resp.json()
            if resp.status != 202:
                raise RuntimeError(f"POST /v1/outbound: {resp.status} {body}")
        return body["document_id"], t0

    async def until_accepted(self, ids: list[str], within: float = 120) -> float:
        end = time.perf_counter() + within
        while any(i not in self.accepted for i in ids):
            if time.perf_counter() > end:
                raise RuntimeError(f"{sum(i not in self.accepted for i in ids)} copies never"
                                   " reached the axis")
            await asyncio.sleep(0.005)
        return max(self.accepted[i] for i in ids)

    async def burst(self, pdfs: list[bytes], metas: list[dict]) -> tuple[float, CpuMeter]:
        slots = asyncio.Semaphore(self.args.concurrency)

        async def one(i: int, meta: dict) -> tuple[str, float]:
            async with slots:
                return await self.submit(pdfs[i % len(pdfs)], meta)

        with CpuMeter(self.proc.pid) as cpu:
            start = time.perf_counter()
            sent = await asyncio.gather(*(one(i, m) for i, m in enumerate(metas)))
            last = await self.until_accepted([d for d, _ in sent])
        return len(metas) / (last - start), cpu

    async def paced(self, pdfs: list[bytes], metas: list[dict], rate: float
                    ) -> tuple[list[float], CpuMeter]:
        tasks = []
        with CpuMeter(self.proc.pid) as cpu:
            start = time.perf_counter()
            for i, meta in enumerate(metas):
                await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
                tasks.append(asyncio.create_task(self.submit(pdfs[i % len(pdfs)], meta)))
            sent = await asyncio.gather(*tasks)
            await self.until_accepted([d for d, _ in sent])
        return [self.accepted[d] - t0 for d, t0 in sent], cpu

    async def __aexit__(self, *exc: object) -> None:
        import aio_pika

        from gateway.bus import topology as topo
        from gateway.config import load_settings
        from gateway.db.pool import drop_database

        try:
            if self.proc is not None and self.proc.returncode is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(self.proc.wait(), 30)
                except TimeoutError:
                    self.proc.kill()
                    await self.proc.wait()
            if self.http is not None:
                await self.http.close()
            if self.axis is not None:
                await self.axis.stop()
            settings = load_settings(self.cfg)
            t = topo.Topology(prefix=settings.bus.prefix, agencies=tuple(settings.served_codes),
                              delivery_limit=settings.bus.delivery_limit,
                              max_length=settings.bus.max_length,
                              retry_delays=tuple(settings.bus.retry_delays))
            connection = await aio_pika.connect(AMQP_URL)
            async with connection:
                await topo.delete(await connection.channel(), t)
        finally:
            await drop_database(self.dsn)


def print_profile(path: str, top: int = 22) -> None:
    if not Path(path).exists():
        print("  (no profile written)")
        return
    for key in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(path, stream=out).sort_stats(key).print_stats(top)
        lines = [ln for ln in out.getvalue().splitlines() if ln.strip()]
        start = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls"))
        print(f"  gateway main process, top by {key}:")
        print("\n".join(lines[start:start + top + 1]))


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=60, help="documents per burst and ceiling")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--paced-seconds", type=float, default=15.0)
    ap.add_argument("--workers", type=int, default=2, help="signing pool processes")
    ap.add_argument("--concurrency", type=int, default=8, help="POSTs in flight in a burst")
    ap.add_argument("--pdf-kb", type=int, default=100)
    ap.add_argument("--distinct-pdfs", type=int, default=6)
    ap.add_argument("--profile", metavar="FILE", help="cProfile the gateway process into FILE")
    args = ap.parse_args()

    from datetime import UTC, datetime

    from signing.testpki import build_test_pki
    from signing.testpki.softhsm import init_softhsm_token_in_child, softhsm_available

    if not softhsm_available():
        sys.exit("SoftHSM2 is not installed (scripts/setup.sh installs it)")
    t_setup = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="bench-out-"))
    pki = build_test_pki(folder / "pki")
    token = init_softhsm_token_in_child(folder / "hsm", pki, certs=("seal",))
    os.environ["SOFTHSM2_CONF"] = str(token.conf)  # for the pools' spawned workers
    keys = write_keys(folder, pki, token)
    pdfs = await asyncio.to_thread(officer_pdfs, pki, folder, args.distinct_pdfs,
                                   args.pdf_kb * 1024)
    today = datetime.now(UTC).date()
    numbers = iter(range(1, 10_000_000))

    def metas(n: int) -> list[dict]:
        return [metadata(next(numbers), today) for _ in range(n)]

    print(f"{args.docs} docs/round, {args.rounds} rounds; main PDF {len(pdfs[0]) / 1024:.0f} KB"
          f" signed by the competent person ({len(pdfs)} distinct); agency seal on SoftHSM"
          f" (PKCS#11, RSA-2048); {args.workers} signing processes; {args.concurrency} POSTs"
          f" in flight; machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    ceiling = Ceiling(args.workers, keys)
    ceilings, bursts, sides = [], [], []
    try:
        async with Outbound(args, pki, keys) as ob:
            await ceiling.run(pdfs, metas(4 * args.workers))  # workers started, key loaded
            await ob.burst(pdfs, metas(4 * args.workers))  # both gateway pools started
            print(f"setup {time.perf_counter() - t_setup:.1f} s\n")
            print("round  sealing-ceiling  outbound-burst  ratio")
            for r in range(1, args.rounds + 1):
                rate, seal_ms = await ceiling.run(pdfs, metas(args.docs))
                ceilings.append(rate)
                rate, cpu = await ob.burst(pdfs, metas(args.docs))
                bursts.append(rate)
                print(f"{r:5d}  {ceilings[-1]:10.1f}/s  {rate:11.1f}/s  "
                      f"{rate / ceilings[-1]:5.2f}")
                n = args.docs
                print(f"       {cpu.line()}")
                print(f"       CPU per document: gateway process {cpu.ms_per_doc('gateway', n):.1f}"
                      f" ms + its pools {cpu.ms_per_doc('pool', n):.1f} ms; postgres "
                      f"{cpu.ms_per_doc('postgres', n):.1f} ms; rabbitmq "
                      f"{cpu.ms_per_doc('rabbitmq', n):.1f} ms; harness "
                      f"{cpu.ms_per_doc('bench', n):.1f} ms")
                side = sum(cpu.ms_per_doc(k, n) for k in ("gateway", "pool", "postgres",
                                                           "rabbitmq"))
                sides.append(seal_ms / side)
                print(f"       sealing alone {seal_ms:.1f} ms CPU per document; gateway side"
                      f" {side:.1f} ms: sealing / gateway side = {sides[-1]:.2f}")
            best_c, best_b = max(ceilings), max(bursts)
            ratio = best_b / best_c
            print("\nbest of rounds:")
            print(f"  sealing alone ({args.workers} processes, SoftHSM) : {best_c:7.1f} docs/s")
            print(f"  POST /v1/outbound -> axis accepted         : {best_b:7.1f} docs/s")
            print(f"  ratio outbound / sealing = {ratio:.2f}  (target >= 0.80)  "
                  f"{'PASS' if ratio >= 0.80 else 'SHORT'}")
            print("  per-round ratios: " + ", ".join(
                f"{b / c:.2f}" for b, c in zip(bursts, ceilings, strict=True)))
            print("  second figure (CPU, not the target's; the machine is shared): sealing"
                  " alone CPU / gateway-side CPU per document = "
                  + ", ".join(f"{x:.2f}" for x in sides))
            half = best_b / 2
            count = max(10, int(half * args.paced_seconds))
            lat, cpu = await ob.paced(pdfs, metas(count), half)
            print(f"\npaced at half the best rate ({half:.1f} docs/s, {count} docs):")
            print(f"  latency POST -> axis accepted: p50 {pct(lat, .5) * 1000:.0f} ms, p95 "
                  f"{pct(lat, .95) * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms  "
                  f"(target p95 < 500 ms)  {'PASS' if pct(lat, .95) < 0.5 else 'SHORT'}")
            print(f"  {cpu.line()}")
    finally:
        ceiling.close()
    if args.profile:
        print("\nprofile of the gateway process (whole run, cProfile):")
        print_profile(args.profile)


if __name__ == "__main__":
    from gateway.cli._common import run_loop

    run_loop(main())
