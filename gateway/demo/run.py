"""``edoc-gateway demo``: documents travel from a city committee to two districts and back.

The city sends, over the simulated national axis, a set of documents signed the Decree 30 way
(competent person, then agency seal): some to one district, some to both, one whose signed
text was altered, one malformed package, and one the axis delivers twice. The gateway polls
the axis, verifies every PDF, stores, routes through RabbitMQ to each district's webhook
adapter and eOffice, and the statuses (01 on arrival, then 03 from the eOffice, or 02 with the
reason) travel back to the city. Each document's journey is printed. Then the round trip
(:mod:`gateway.demo.roundtrip`): a district sends a report up to the city through ``POST
/v1/outbound``, sealed by the gateway with the district's key; the city answers 01 and 03; the
city takes back a document it sent the district (13 → 15). ``--once`` exits 1 if any expected
delivery, status or step is missing.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from gateway.demo.exchange import (
    CITY,
    DISTRICT1,
    DISTRICT2,
    Exchange,
    ExchangeOptions,
    organ,
    wait_until,
)
from gateway.demo.roundtrip import DISTRICT_SEAL, SENDER, round_trip, write_keys
from gateway.demo.samples import edoc, malformed_package, package, signed_pdf, tamper
from gateway.edxml import parse
from signing.testpki import build_test_pki


@dataclass
class Sent:
    number: int
    title: str
    receivers: list[str]
    expect: str  # accepted | rejected
    edxml_document_id: str
    note: str
    duplicate: bool = False


def _dsn_for_demo(base: str) -> str:
    from gateway.db.pool import with_database

    return with_database(base, f"edoc_demo_{uuid.uuid4().hex[:8]}")


async def _send_all(ex: Exchange, pki) -> list[Sent]:
    d1, d2 = organ(DISTRICT1), organ(DISTRICT2)
    city = organ(CITY)
    plan = [
        (1, "Cong van ve ke hoach chuyen doi so", [d1, d2], "accepted", "gửi hai quận"),
        (2, "Giay moi hop giao ban", [d1], "accepted", "gửi quận Một"),
        (3, "Quyet dinh phe duyet du toan", [d2], "accepted", "gửi quận Hai"),
        (4, "Thong bao lich tiep cong dan", [d1, d2], "accepted",
         "gửi hai quận; trục gửi lặp lại"),
        (5, "Cong van da bi sua noi dung", [d1], "rejected", "nội dung bị sửa sau khi ký"),
    ]
    sent: list[Sent] = []
    for number, title, receivers, expect, note in plan:
        pdf = await signed_pdf(pki, title)
        if expect == "rejected":
            pdf = tamper(pdf, title)
        raw = package(edoc(city, receivers, pdf, number=number, subject=title))
        await ex.city.send_edoc(raw)
        if number == 4:
            await ex.city.send_edoc(raw)  # the same package once more: must change nothing
        sent.append(Sent(number, title, [r.organ_id for r in receivers], expect,
                         parse(raw).document_id, note, duplicate=number == 4))
    bad = malformed_package(city, d2, 6)
    await ex.city.send_edoc(bad, to=[d2.organ_id])
    sent.append(Sent(6, "(gói tin thiếu trích yếu và người ký)", [d2.organ_id], "rejected",
                     f"{city.organ_id},{time.strftime('%Y/%m/%d')},6/UBND-VP",
                     "gói edXML sai cấu trúc"))
    return sent


def _expectations_met(ex: Exchange, sent: list[Sent]) -> list[str]:
    """What is still missing (empty when the round is complete)."""
    missing: list[str] = []
    statuses = ex.statuses_at_city()
    by_doc: dict[str, list] = {}
    for s in statuses:
        by_doc.setdefault(s.response_for_document_id, []).append(s)
    for item in sent:
        got = {(s.from_organ, s.status_code) for s in by_doc.get(item.edxml_document_id, [])}
        final = "03" if item.expect == "accepted" else "02"
        for agency in item.receivers:
            if item.expect == "accepted":
                if (agency, "01") not in got:
                    missing.append(f"#{item.number}: 01 from {agency}")
                delivered = [d for d in ex.districts[agency].eoffice.documents.values()
                             if d.payload.get("edxml_document_id") == item.edxml_document_id
                             and d.kind == "document"]
                if len(delivered) != 1:
                    missing.append(f"#{item.number}: delivered {len(delivered)}× to {agency}")
            if (agency, final) not in got:
                missing.append(f"#{item.number}: {final} from {agency}")
    return missing


async def _journey(ex: Exchange, item: Sent, t0: float) -> list[str]:
    lines = [f"#{item.number} {item.title!r} → {', '.join(item.receivers)}  ({item.note})"]
    async with ex.gateway.pool.acquire() as db:
        doc = await db.fetchrow(
            "SELECT id, state, signature_verdict, reject_code, reject_reason, created_at"
            " FROM documents WHERE edxml_document_id = $1 OR (edxml_document_id IS NULL AND"
            " reject_code LIKE 'EDXML%') ORDER BY created_at LIMIT 1", item.edxml_document_id)
        if doc is None:
            return [*lines, "   not received by the gateway"]
        lines.append(f"   gateway document {doc['id']}: {doc['state']}, chữ ký: "
                     f"{doc['signature_verdict'] or '-'}"
                     + (f", lý do: {doc['reject_code']}" if doc["reject_code"] else ""))
        events = await db.fetch(
            "SELECT at, event, agency_code FROM document_events WHERE document_id = $1"
            " ORDER BY at, id", doc["id"])
    start = events[0]["at"] if events else doc["created_at"]
    for e in events:
        ms = (e["at"] - start).total_seconds() * 1000
        lines.append(f"   +{ms:7.0f} ms  {e['event']:<22} {e['agency_code'] or ''}")
    for s in ex.statuses_at_city():
        if s.response_for_document_id == item.edxml_document_id:
            lines.append(f"   city received status {s.status_code} from {s.from_organ}: "
                         f"{s.description}")
    return lines


async def run_demo(*, once: bool, database_url: str, amqp_url: str, within: float) -> int:
    with tempfile.TemporaryDirectory(prefix="edoc-demo-") as tmp:
        print("Building the test PKI (root, issuing CA, officer, agency seal, TSA)…")
        pki = build_test_pki(Path(tmp))
        options = ExchangeOptions(
            database_url=_dsn_for_demo(database_url), amqp_url=amqp_url,
            prefix=f"demo{uuid.uuid4().hex[:6]}", trust_bundle=pki.trust_bundle_path,
            revocation_cache=pki.crl_cache(),
            senders=[{"agency": CITY.organ_id,
                      "certificate_sha256": [pki.cert("seal").sha256.hex()]}],
            keys_file=write_keys(Path(tmp), pki), seal_keys={SENDER.organ_id: DISTRICT_SEAL})
        ex = Exchange(options)
        print("Starting the axis simulator, the gateway, adapters and eOffice simulators…")
        await ex.start()
        try:
            print(f"Gateway at {ex.gateway_url} serving {DISTRICT1.name} and {DISTRICT2.name};"
                  f" axis at {ex.axis.base_url}\n")
            t0 = time.perf_counter()
            sent = await _send_all(ex, pki)
            print(f"{CITY.name} sent {len(sent)} documents (+1 duplicate) over the axis.\n")
            done = await wait_until(lambda: not _expectations_met(ex, sent), within=within)
            elapsed = time.perf_counter() - t0
            t1 = time.perf_counter()
            taken = next(s for s in sent if s.receivers == [SENDER.organ_id]
                         and s.expect == "accepted")
            trip = await round_trip(ex, taken.edxml_document_id, within=within)
            trip_elapsed = time.perf_counter() - t1
            settled = await wait_until(ex.settled, within=15)
            for item in sent:
                print("\n".join(await _journey(ex, item, t0)))
                print()
            print("\n".join(trip.lines))
            print(f"Round trip finished in {trip_elapsed:.1f} s.\n")
            missing = _expectations_met(ex, sent) + trip.missing
            delivered = sum(sum(ex.accepted_at(a).values()) for a in ex.districts)
            dupes = sum(d.eoffice.duplicates for d in ex.districts.values())
            print(f"Round finished in {elapsed:.1f} s: {delivered} deliveries to eOffice, "
                  f"{dupes} duplicate webhooks suppressed, "
                  f"{len(ex.statuses_at_city())} statuses back at the city.")
            if missing or not done or not settled:
                if not settled:
                    missing.append("deliveries not all DELIVERED or outbox not empty")
                print("MISSING: " + "; ".join(missing), file=sys.stderr)
                return 1
            print("Every document arrived exactly once, with its statuses; the report went up"
                  " sealed and was answered 01/03; the take back was answered 15. ✔")
            if not once:
                print(f"\nStill running: operator token {ex.operator_token}\n"
                      f"  curl -H 'Authorization: Bearer {ex.operator_token}' "
                      f"{ex.gateway_url}/v1/documents\nPress Ctrl-C to stop.")
                with contextlib_suppress():
                    await asyncio.Event().wait()
            return 0
        finally:
            await ex.stop()


def contextlib_suppress():
    import contextlib

    return contextlib.suppress(asyncio.CancelledError, KeyboardInterrupt)


def default_urls() -> tuple[str, str]:
    return (os.environ.get("EDOC_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
            os.environ.get("EDOC_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
