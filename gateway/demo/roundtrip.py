"""The demo's round trip (issue 13): a district sends a report UP to the city, the city
answers ``01`` then ``03``; the city takes back a document it sent DOWN (``13`` → ``15``).

* **Up**: the district's competent person signs the report through ``/v1/sign`` (PKCS#12
  ``officer``); the district's eOffice sends it with ``POST /v1/outbound`` and ``seal: true``;
  the gateway applies the district's agency seal (``seal_key``: a PKCS#12 key of the test PKI)
  and sends one copy to the city over the axis simulator. The city takes it off the axis
  (``getReceivedEdocList``/``getEdoc``): exactly one copy, its PDF verified (both signatures
  valid). The city answers ``01`` (received) then ``03`` (accepted, with ``StaffInfo``); the
  gateway matches them to the outbound document by ``ResponseFor`` and ``GET
  /v1/outbound/{id}`` shows them with the timeline.
* **Take back**: the city sends ``13`` about a document it sent the district; the gateway marks
  it ``take_back: PENDING`` and delivers a ``take_back`` message to the district's eOffice,
  which answers ``15`` through ``POST /v1/documents/{id}/status``; the ``15`` reaches the city
  and the document is ``TAKEN_BACK``.

Each step appends readable lines; :class:`Outcome` lists what is missing (``--once`` exits 1
unless nothing is).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import aiohttp

from gateway.axis import AckStatus, MessageType
from gateway.demo.exchange import CITY, DISTRICT1, Exchange, organ, wait_until
from gateway.edxml import ResponseFor, StaffInfo, StatusMessage, build, parse
from signing.testpki import TestPki
from signing.testpki.pdfs import make_pdf

#: Key aliases of the demo's key file.
OFFICER_KEY = "officer"
DISTRICT_SEAL = "seal-q1"
#: The district that sends a report up (its seal is configured) and takes a 13.
SENDER = DISTRICT1


def write_keys(folder: Path, pki: TestPki) -> Path:
    """The demo's key file: the competent person (``officer``) and the district's agency
    seal (``seal-q1``), both PKCS#12 files of the test PKI (the test PKI has one agency seal
    certificate; the district uses it)."""
    (folder / "p12.pass").write_bytes(pki.p12_passphrase + b"\n")
    path = folder / "keys.toml"
    path.write_text(
        f'[keys.{OFFICER_KEY}]\nrole = "competent_person"\nowner = "Nguyễn Văn A"\n'
        f'path = "{pki.p12("officer")}"\npassphrase_file = "p12.pass"\n\n'
        f'[keys.{DISTRICT_SEAL}]\nrole = "agency"\nowner = "{SENDER.organ_id}"\n'
        f'path = "{pki.p12("seal")}"\npassphrase_file = "p12.pass"\n', encoding="utf-8")
    return path


@dataclass
class Outcome:
    lines: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def say(self, line: str) -> None:
        self.lines.append(line)

    def need(self, ok: object, what: str) -> bool:
        if not ok:
            self.missing.append(what)
            self.lines.append(f"   ✘ {what}")
        return bool(ok)


class _Api:
    """The gateway's HTTP API as the district's eOffice and officer call it."""

    def __init__(self, ex: Exchange, http: aiohttp.ClientSession, eoffice: str,
                 officer: str) -> None:
        self.url = ex.gateway_url
        self.http = http
        self.eoffice = {"Authorization": f"Bearer {eoffice}"}
        self.officer = {"Authorization": f"Bearer {officer}"}

    async def sign(self, pdf: bytes) -> bytes:
        form = aiohttp.FormData()
        for name, value in (("key", OFFICER_KEY), ("role", "competent_person"),
                            ("signer_name", "Nguyễn Văn A"), ("position", "Chủ tịch")):
            form.add_field(name, value)
        form.add_field("file", pdf, filename="bao-cao.pdf", content_type="application/pdf")
        async with self.http.post(f"{self.url}/v1/sign", headers=self.officer,
                                  data=form) as resp:
            if resp.status != 200:
                raise RuntimeError(f"/v1/sign: {resp.status} {await resp.text()}")
            return await resp.read()

    async def send(self, meta: dict[str, Any], pdf: bytes, key: str) -> tuple[int, dict]:
        form = aiohttp.FormData()
        form.add_field("metadata", json.dumps(meta, ensure_ascii=False).encode(),
                       content_type="application/json")
        form.add_field("file", pdf, filename="bao-cao.pdf", content_type="application/pdf")
        async with self.http.post(f"{self.url}/v1/outbound", data=form,
                                  headers={**self.eoffice, "Idempotency-Key": key}) as resp:
            return resp.status, await resp.json()

    async def outbound(self, doc_id: str) -> dict[str, Any]:
        async with self.http.get(f"{self.url}/v1/outbound/{doc_id}",
                                 headers=self.eoffice) as resp:
            resp.raise_for_status()
            return await resp.json()


def _report_meta(today: date) -> dict[str, Any]:
    return {
        "from": SENDER.organ_id, "to": [CITY.organ_id], "code_number": "45",
        "code_notation": "BC-UBND", "promulgation_place": "Quận Một",
        "promulgation_date": f"{today:%Y/%m/%d}", "document_type": 2, "type_name": "Báo cáo",
        "subject": "Báo cáo kết quả chuyển đổi số quý I", "priority": 0,
        "signer": {"full_name": "Nguyễn Văn A", "competence": "TM. ỦY BAN NHÂN DÂN",
                   "position": "Chủ tịch"},
        "seal": True,
    }


def _status(code: str, text: str, rf: ResponseFor, staff: StaffInfo | None = None) -> bytes:
    return build(StatusMessage(from_organ=organ(CITY), response_for=rf, status_code=code,
                               description=text, timestamp=datetime.now(UTC),
                               staff_info=staff))


async def send_up(ex: Exchange, api: _Api, out: Outcome, within: float) -> None:
    """A district's report up to the city, sealed by the gateway; the city answers 01/03."""
    out.say(f"▲ Chiều lên / upward: {SENDER.name} → {CITY.name} (POST /v1/outbound, seal: true)")
    today = datetime.now(UTC).date()
    signed = await api.sign(make_pdf(1, "Bao cao ket qua chuyen doi so quy I"))
    meta = _report_meta(today)
    status, body = await api.send(meta, signed, key="demo-bc-45")
    if not out.need(status == 202, f"POST /v1/outbound answered {status}: {body}"):
        return
    doc_id = body["id"]
    out.say(f"   gateway outbound {doc_id}: {body['document_id']}, {body['state']}, "
            f"sealed={body['sealed']}")

    async def sent() -> dict | None:
        doc = await api.outbound(doc_id)
        return doc if doc["state"] != "QUEUED" else None

    doc = await wait_until(sent, within=within)
    if not out.need(doc and doc["state"] == "SENT", "the copy to the city was not SENT"):
        return
    copy = doc["receivers"][0]
    out.say(f"   copy → {copy['receiver']}: {copy['state']}, axis DocId {copy['axis_doc_id']},"
            f" attempts {copy['attempts']}")

    # the city takes it off the axis
    items = [i for i in await ex.city.list_received(MessageType.EDOC)
             if i.from_ == SENDER.organ_id]
    at_axis = [p for p in ex.axis.sent_to(CITY.organ_id, MessageType.EDOC)
               if p.from_organ == SENDER.organ_id]
    out.need(len(items) == 1 and len(at_axis) == 1,
             f"the city should find exactly one copy at the axis, found {len(at_axis)}")
    if not items:
        return
    msg = parse(await ex.city.fetch(items[0].doc_id))
    await ex.city.ack(items[0].doc_id, AckStatus.DONE)
    out.say(f"   {CITY.name} nhận / received 1 bản (getEdoc {items[0].doc_id}): "
            f"{msg.code.code_number}/{msg.code.code_notation} {msg.subject!r}")
    judge = ex.gateway.judge
    assert judge is not None
    report = await judge.pool.verify(msg.attachments[0].data, judge.policy)
    sigs = [s for s in report.signatures if s.kind == "signature"]
    roles = [s.role.value for s in sigs]
    out.say(f"   chữ ký / signatures of {msg.attachments[0].name}: {report.verdict.value}")
    for s in sigs:
        who = s.signer.common_name if s.signer else "?"
        out.say(f"      {s.field:<24} {s.role.value:<17} {s.verdict.value:<6} {who}")
    out.need(report.verdict.value == "valid" and roles == ["competent_person", "agency"],
             "the city's copy should verify valid with the competent person's signature and"
             f" the agency seal (got {report.verdict.value}, {roles})")

    # the city answers 01 then 03
    rf = ResponseFor(SENDER.organ_id, f"{msg.code.code_number}/{msg.code.code_notation}",
                     msg.promulgation_info.promulgation_date, msg.document_id)
    await ex.city.send_status(_status("01", "Đã đến", rf), to=[SENDER.organ_id])

    async def recorded(*codes: str) -> dict | None:
        doc = await api.outbound(doc_id)
        got = {s["status_code"] for s in doc["statuses"] if s["agency_code"] == CITY.organ_id}
        return doc if set(codes) <= got else None

    await wait_until(lambda: recorded("01"), within=within)  # 03 comes after processing
    await ex.city.send_status(_status("03", "Đã tiếp nhận, giao Văn phòng xử lý", rf,
                                      StaffInfo("Văn phòng UBND thành phố", "Trần Thị C",
                                                "vanphong@thunghiem.gov.vn")),
                              to=[SENDER.organ_id])

    doc = await wait_until(lambda: recorded("01", "03"), within=within) \
        or await api.outbound(doc_id)
    out.say(f"   GET /v1/outbound/{doc_id}: state {doc['state']}; statuses from the city:")
    for s in doc["statuses"]:
        staff = s.get("staff")
        staff = f" [{staff.get('Staff')}, {staff.get('Department')}]" \
            if isinstance(staff, dict) else ""
        out.say(f"      {s['status_code']} {s['agency_code']}: {s['description']}{staff}")
    got = {s["status_code"] for s in doc["statuses"] if s["agency_code"] == CITY.organ_id}
    out.need({"01", "03"} <= got, f"statuses 01 and 03 from the city on the outbound document"
             f" (got {sorted(got)})")
    out.say("   timeline:")
    start = _at(doc["timeline"][0]["at"]) if doc["timeline"] else None
    for e in doc["timeline"]:
        ms = (_at(e["at"]) - start).total_seconds() * 1000 if start else 0
        out.say(f"   +{ms:7.0f} ms  {e['event']:<22} {e.get('agency_code') or ''}")
    forwarded = [d for d in ex.districts[SENDER.organ_id].eoffice.documents.values()
                 if d.kind == "status"]
    if forwarded:
        out.say(f"   {len(forwarded)} status message(s) forwarded to the district's eOffice")
    else:
        out.say("   (statuses back to the sending eOffice: not forwarded by this gateway"
                " version; shown as the gateway stored them)")


async def take_back(ex: Exchange, out: Outcome, document_id: str, within: float) -> None:
    """The city takes back ``document_id`` (sent down to the district): 13 → 15."""
    out.say(f"▼ Lấy lại / take back: {CITY.name} → {SENDER.name} (status 13 → 15)")
    async with ex.gateway.pool.acquire() as db:
        row = await db.fetchrow(
            "SELECT id, code_number, code_notation, promulgation_date, state FROM documents"
            " WHERE direction = 'inbound' AND edxml_document_id = $1", document_id)
    if not out.need(row is not None, f"document {document_id} not at the gateway"):
        return
    rf = ResponseFor(CITY.organ_id, f"{row['code_number']}/{row['code_notation']}",
                     row["promulgation_date"], document_id)
    out.say(f"   gateway document {row['id']} ({document_id}): {row['state']} before")
    await ex.city.send_status(_status("13", "Gửi nhầm nơi nhận, đề nghị trả lại văn bản", rf),
                              to=[SENDER.organ_id])

    def agreed() -> list:
        return [s for s in ex.statuses_at_city() if s.status_code == "15"
                and s.response_for_document_id == document_id]

    back = await wait_until(agreed, within=within)
    async with ex.gateway.pool.acquire() as db:
        row = await db.fetchrow("SELECT state, take_back FROM documents WHERE id = $1",
                                row["id"])
        statuses = await db.fetch(
            "SELECT direction, agency_code, status_code, description FROM status_events"
            " WHERE document_id = (SELECT id FROM documents WHERE direction = 'inbound'"
            " AND edxml_document_id = $1) AND status_code IN ('13', '15', '16')"
            " ORDER BY occurred_at, id", document_id)
    typed = [d for d in ex.districts[SENDER.organ_id].eoffice.documents.values()
             if d.kind == "take_back"]
    for s in statuses:
        arrow = "→ gateway" if s["direction"] == "inbound" else "→ city"
        out.say(f"      {s['status_code']} {s['agency_code']} {arrow}: {s['description']}")
    out.say(f"   eOffice {SENDER.name} received {len(typed)} take_back message(s)")
    if back:
        out.say(f"   {CITY.name} received 15 from {back[0].from_organ}: {back[0].description}")
    out.say(f"   document now {row['state']}, take_back {row['take_back']}")
    out.need(back, "status 15 from the district back at the city")
    out.need(len(typed) == 1, f"one take_back message at the eOffice (got {len(typed)})")
    out.need(row["state"] == "TAKEN_BACK", f"the document TAKEN_BACK (is {row['state']})")


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def round_trip(ex: Exchange, take_back_document_id: str, within: float) -> Outcome:
    """Both halves; the district's tokens are made here (eOffice of ``SENDER``, officer)."""
    from gateway.api.auth import create_client

    out = Outcome()
    async with ex.gateway.pool.acquire() as db:
        officer = (await create_client(db, name="demo officer", role="officer",
                                       key_aliases=[OFFICER_KEY])).token
    async with aiohttp.ClientSession() as http:
        api = _Api(ex, http, ex.districts[SENDER.organ_id].token, officer)
        for step in (lambda: send_up(ex, api, out, within),
                     lambda: take_back(ex, out, take_back_document_id, within)):
            try:
                await step()
            except (OSError, RuntimeError, ValueError, aiohttp.ClientError) as exc:
                out.need(False, f"{type(exc).__name__}: {exc}")
            out.say("")
    return out
