"""Tracking (issue 13, "Tracking"): the city's eOffice sent documents through the gateway; the
receivers' business statuses come back over the VDXP simulator, are recorded on each
receiver's copy and on the timeline, and are forwarded exactly once to the city's eOffice as
typed ``kind: status`` messages on its queue; the copies' axis receive state is polled from
``getSentEdocList`` while it matters.

Real PostgreSQL, RabbitMQ, signing pool processes and the simulator over HTTP (no seal here:
the competent person's PKCS#12 signature is all a submission needs)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from adapters.message import parse_delivery
from gateway.app import Gateway
from gateway.axis import MessageType
from gateway.axis.simulator import AxisSimulator
from gateway.business.status_rules import MAX_DESCRIPTION
from gateway.demo.exchange import CITY, DISTRICT1, DISTRICT2
from gateway.edxml import Organ, ResponseFor, StaffInfo, StatusMessage, build
from tests.conftest import wait_for
from tests.flows.conftest import OTHER, purge_agency_queues
from tests.flows.outbound_kit import form, metadata, sender_settings, signed_by_officer, write_keys
from tests.service.signing_client import bearer

D1, D2 = DISTRICT1.organ_id, DISTRICT2.organ_id
STAFF = StaffInfo(department="Văn phòng", staff="Trần Thị B", email="b@d1.example",
                  mobile="0900000001")


@pytest.fixture(scope="module")
def keys(pki, tmp_path_factory):
    return write_keys(tmp_path_factory.mktemp("tracking-keys"), pki)


@pytest.fixture
async def axis():
    async with AxisSimulator([CITY, DISTRICT1, DISTRICT2, OTHER]) as sim:
        yield sim


@pytest.fixture
async def gw(database_url, bus_prefix, pki, axis, keys, db, amqp):
    settings = sender_settings(
        database_url, bus_prefix, pki, axis.base_url, keys,
        agencies=[{"code": CITY.organ_id, "name": CITY.name, "axis": "city"}],
        outbound={"track_interval": 0.2, "track_tick": 0.1, "track_rate": 50.0})
    gateway = Gateway(settings)
    await gateway.start()
    await purge_agency_queues(amqp, gateway.topology, [CITY.organ_id])
    yield gateway
    await gateway.stop()
    await purge_agency_queues(amqp, gateway.topology, [CITY.organ_id])


@pytest.fixture
async def client(gw, aiohttp_client):
    return await aiohttp_client(gw.web_app())


@pytest.fixture
async def eoffice(db):
    return await bearer(db, "eoffice", "city-eoffice", agencies=[CITY.organ_id])


@pytest.fixture
async def officer(db):
    return await bearer(db, "officer", "city-officer", key_aliases=["officer"])


async def _sent(client, eoffice, officer, receivers: list[str], number: int) -> dict:
    """Submit one document and wait until every copy is at the axis."""
    main = await signed_by_officer(client, officer, f"Van ban so {number}")
    resp = await client.post("/v1/outbound", headers=eoffice, data=form(
        metadata(receivers, number, seal=False), [("cv.pdf", main, "application/pdf")]))
    assert resp.status == 202, await resp.text()
    doc_id = (await resp.json())["id"]

    async def settled():
        doc = await _get(client, eoffice, doc_id)
        return doc if doc["state"] == "SENT" else None
    return await wait_for(settled, timeout=30)


async def _get(client, headers, doc_id: str) -> dict:
    resp = await client.get(f"/v1/outbound/{doc_id}", headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


def _status(doc: dict, reporter: str, code: str, *, minutes: int, description: str = "",
            staff: StaffInfo | None = STAFF, number: str | None = None) -> bytes:
    """A status package from ``reporter`` about the city's document ``doc``."""
    return build(StatusMessage(
        from_organ=Organ(reporter, None),
        response_for=ResponseFor(CITY.organ_id, number or f"{doc['code_number']}/UBND-VP",
                                 date(2024, 3, 1), doc["edxml_document_id"]),
        status_code=code, description=description or f"Trạng thái {code}",
        timestamp=datetime(2024, 3, 2, 8, 0, tzinfo=UTC) + timedelta(minutes=minutes),
        staff_info=staff))


def _post(axis, reporter: str, package: bytes) -> None:
    axis.post_document(package, from_organ=reporter, to=[CITY.organ_id],
                       message_type=MessageType.STATUS)


async def _drain(amqp, gw) -> list[dict]:
    """The typed messages waiting on the city's queue (taken off it)."""
    channel = await amqp.channel()
    try:
        queue = await channel.get_queue(gw.topology.agency_queue(CITY.organ_id), ensure=False)
        out = []
        while (msg := await queue.get(no_ack=True, fail=False)) is not None:
            parse_delivery(msg.body)  # the adapters' parser accepts it
            out.append(json.loads(msg.body))
        return out
    finally:
        await channel.close()


async def _taken(axis, db) -> bool:
    """Every status package was taken from the axis and every message left the outbox."""
    return not axis.pending(CITY.organ_id) and await db.fetchval(
        "SELECT count(*) = 0 FROM outbox")


async def _forwarded(amqp, gw, seen: list[dict], count: int) -> list[dict] | None:
    seen.extend(await _drain(amqp, gw))
    return seen if len(seen) >= count else None


async def test_receivers_statuses_are_recorded_per_copy_and_forwarded_once(
        client, gw, axis, eoffice, officer, db, amqp):
    """01 and 03 from one receiver, 02 from the other: each on its receiver's copy (the latest
    by Timestamp: a late 01 does not hide the 03), on the timeline, and forwarded once each to
    the sending agency's queue as ``kind: status``; the same 03 again is not forwarded twice;
    a status from an agency that is not a receiver is kept unmatched, never attached."""
    doc = await _sent(client, eoffice, officer, [D1, D2], 201)
    _post(axis, D1, _status(doc, D1, "03", minutes=30, description="Đã vào sổ"))
    _post(axis, D1, _status(doc, D1, "01", minutes=1))  # arrives late, happened first
    _post(axis, D2, _status(doc, D2, "02", minutes=5, description="Gửi nhầm đơn vị"))
    _post(axis, OTHER.organ_id, _status(doc, OTHER.organ_id, "03", minutes=6))
    messages: list[dict] = []
    await wait_for(lambda: _forwarded(amqp, gw, messages, 3), timeout=20)
    # the same 03 again (other time and text), after the first ones were taken
    _post(axis, D1, _status(doc, D1, "03", minutes=40, description="Đã vào sổ (lần 2)"))
    await wait_for(lambda: _taken(axis, db), timeout=15)
    messages.extend(await _drain(amqp, gw))
    assert sorted((m["status"]["receiver"], m["status"]["code"]) for m in messages) == [
        (D1, "01"), (D1, "03"), (D2, "02")]
    for m in messages:
        assert m["kind"] == "status" and m["agency"] == CITY.organ_id
        assert m["document_id"] == doc["id"]
        assert m["edxml_document_id"] == doc["edxml_document_id"]
        assert m["attachments"] == [] and "status_url" not in m
        sends = {r["receiver"]: r for r in doc["receivers"]}
        assert m["status"]["send_id"] == sends[m["status"]["receiver"]]["send_id"]
        assert m["status"]["staff"] == {"Department": "Văn phòng", "Staff": "Trần Thị B",
                                        "Email": "b@d1.example", "Mobile": "0900000001"}
    accepted = next(m for m in messages if m["status"]["code"] == "03")
    assert accepted["status"]["description"] == "Đã vào sổ"
    assert accepted["status"]["meaning_vi"]
    assert accepted["status"]["timestamp"].startswith("2024-03-02T08:30")

    now = await _get(client, eoffice, doc["id"])
    copies = {r["receiver"]: r for r in now["receivers"]}
    assert copies[D1]["status_code"] == "03" and copies[D1]["status_description"] == "Đã vào sổ"
    assert copies[D1]["status_staff"]["Staff"] == "Trần Thị B"
    assert [s["code"] for s in copies[D1]["statuses"]] == ["01", "03"]
    assert copies[D2]["status_code"] == "02"
    assert copies[D2]["statuses"][0]["description"] == "Gửi nhầm đơn vị"
    assert copies[D1]["axis_tracking"] == copies[D2]["axis_tracking"] == "DONE"
    events = [(e["event"], e["agency_code"]) for e in now["timeline"]]
    for item in (("status.inbound.01", D1), ("status.inbound.03", D1),
                 ("status.inbound.02", D2)):
        assert item in events
    assert events.count(("status.forwarded", D1)) == 2
    assert events.count(("status.forwarded", D2)) == 1
    assert ("status.inbound.03", OTHER.organ_id) not in events
    stray = await db.fetch("SELECT document_id, problem FROM status_events"
                           " WHERE agency_code = $1", OTHER.organ_id)
    assert [(r["document_id"], r["problem"]) for r in stray] == [
        (None, "STATUS_NOT_FROM_RECEIVER")]
    deliveries = await db.fetch("SELECT kind, agency_code FROM deliveries WHERE document_id = $1",
                                uuid.UUID(doc["id"]))
    assert sorted((r["kind"], r["agency_code"]) for r in deliveries) == [
        ("status", CITY.organ_id)] * 3
    listed = await client.get("/v1/outbound?state=SENT", headers=eoffice)
    assert listed.status == 200
    items = (await listed.json())["items"]
    assert [i["id"] for i in items] == [doc["id"]]
    assert {r["receiver"]: r["status_code"] for r in items[0]["receivers"]} == {D1: "03",
                                                                               D2: "02"}


async def test_a_status_naming_other_document_details_is_not_attached(
        client, gw, axis, eoffice, officer, db, amqp):
    """``ResponseFor`` must agree with the document it names: another Code is kept
    unmatched (STATUS_DOCUMENT_MISMATCH), an unknown DocumentId too (STATUS_DOCUMENT_UNKNOWN);
    nothing is forwarded."""
    doc = await _sent(client, eoffice, officer, [D1], 202)
    _post(axis, D1, _status(doc, D1, "03", minutes=1, number="999/KHAC"))
    _post(axis, D1, _status({**doc, "edxml_document_id": "khác,2024/03/01,1/X"}, D1, "03",
                            minutes=2))
    await wait_for(lambda: db.fetchval(
        "SELECT count(*) = 2 FROM status_events WHERE document_id IS NULL"), timeout=15)
    problems = sorted(r["problem"] for r in await db.fetch(
        "SELECT problem FROM status_events WHERE document_id IS NULL"))
    assert problems == ["STATUS_DOCUMENT_MISMATCH", "STATUS_DOCUMENT_UNKNOWN"]
    assert await db.fetchval("SELECT count(*) FROM deliveries") == 0
    assert (await _get(client, eoffice, doc["id"]))["receivers"][0]["status_code"] is None


async def test_hostile_statuses_are_stored_bounded_and_never_crash(
        client, gw, axis, eoffice, officer, db, amqp):
    """A 10 KB description, C1 controls, an unknown code (kept as it came) are stored and
    forwarded within the field limits; a package with a NUL (no XML can hold it) is refused
    as a package, and the statuses after it are still taken."""
    doc = await _sent(client, eoffice, officer, [D1, D2], 203)
    big = "x" * 10240
    _post(axis, D1, _status(doc, D1, "99", minutes=1, description=big,
                            staff=StaffInfo(department="P\x85" + "p" * 600, staff="S")))
    nul = _status(doc, D2, "03", minutes=2, description="before-NUL-after")
    _post(axis, D2, nul.replace(b"before-NUL-after", b"before\x00after"))
    _post(axis, D2, _status(doc, D2, "03", minutes=3, description="sau gói hỏng"))
    messages: list[dict] = []
    await wait_for(lambda: _forwarded(amqp, gw, messages, 2), timeout=20)
    odd = next(m["status"] for m in messages if m["status"]["receiver"] == D1)
    assert odd["code"] == "99" and odd["meaning_vi"] is None
    assert len(odd["description"]) <= MAX_DESCRIPTION and "10240" in odd["description"]
    assert "\x85" not in odd["staff"]["Department"] and len(odd["staff"]["Department"]) <= 255
    copies = {r["receiver"]: r for r in (await _get(client, eoffice, doc["id"]))["receivers"]}
    assert copies[D1]["status_code"] == "99"
    assert len(copies[D1]["status_description"]) <= MAX_DESCRIPTION
    assert copies[D2]["status_code"] == "03"
    assert copies[D2]["status_description"] == "sau gói hỏng"
    assert await db.fetchval("SELECT count(*) FROM status_events WHERE document_id IS NULL") == 0


async def test_the_axis_receive_state_is_polled_while_it_matters(
        client, gw, axis, eoffice, officer, db):
    """getSentEdocList per sent copy: ``initial`` recorded, then the receiver acks its copy at
    the axis and the copy becomes received (``DONE``, no more calls); a copy the axis does not
    know is ``STOPPED``; a copy sent longer ago than ``outbound.track_for`` is ``EXPIRED``."""
    doc = await _sent(client, eoffice, officer, [D1, D2], 204)
    by = {r["receiver"]: r for r in doc["receivers"]}

    async def copy(receiver: str, **want):
        row = await db.fetchrow("SELECT * FROM outbound_sends WHERE id = $1",
                                uuid.UUID(by[receiver]["send_id"]))
        return row if all(row[k] == v for k, v in want.items()) else None

    await wait_for(lambda: copy(D1, axis_receive_status="initial"), timeout=10)
    first = await copy(D1)
    assert first["axis_send_status"] == "done" and first["axis_tracking"] == "ACTIVE"
    assert first["axis_received_at"] is None and first["axis_sent_time"]
    received = axis.sent_to(D1, MessageType.EDOC)[0]
    axis.state.ack(D1, received.doc_id, "done", "đã nhận", datetime.now(UTC))
    done = await wait_for(lambda: copy(D1, axis_tracking="DONE"), timeout=10)
    assert done["axis_receive_status"] == "done" and done["axis_received_at"] is not None
    assert done["axis_receive_status_desc"] == "đã nhận" and done["axis_received_time"]
    calls = axis.call_count("getSentEdocList")
    # D2: the axis no longer knows the DocId -> STOPPED (a permanent refusal is not asked again)
    await db.execute("UPDATE outbound_sends SET axis_doc_id = 'S-999999' WHERE id = $1",
                     uuid.UUID(by[D2]["send_id"]))
    stopped = await wait_for(lambda: copy(D2, axis_tracking="STOPPED"), timeout=10)
    assert stopped["axis_received_at"] is None
    assert axis.call_count("getSentEdocList") > calls
    timeline = (await _get(client, eoffice, doc["id"]))["timeline"]
    changes = [e for e in timeline if e["event"] == "axis.receive_status"
               and e["agency_code"] == D1]
    assert [e["detail"]["receive_status"] for e in changes] == ["initial", "done"]
    assert changes[-1]["detail"]["tracking"] == "DONE"
    assert [e["detail"]["error_code"] for e in timeline
            if e["event"] == "axis.tracking_stopped"] == ["404"]
    # nothing is ACTIVE any more: the simulator is asked nothing more
    await wait_for(lambda: db.fetchval(
        "SELECT count(*) = 0 FROM outbound_sends WHERE axis_tracking = 'ACTIVE'"), timeout=5)
    before = axis.call_count("getSentEdocList")
    await asyncio.sleep(0.6)
    assert axis.call_count("getSentEdocList") == before

    # a copy sent long ago (more than track_for hours) is not asked about: EXPIRED
    late = await _sent(client, eoffice, officer, [D1], 205)
    send_id = uuid.UUID(late["receivers"][0]["send_id"])
    await db.execute("UPDATE outbound_sends SET sent_at = now() - interval '100 hours',"
                     " axis_tracking = 'ACTIVE' WHERE id = $1", send_id)
    await wait_for(lambda: db.fetchval(
        "SELECT axis_tracking = 'EXPIRED' FROM outbound_sends WHERE id = $1", send_id),
        timeout=10)
    events = [e["event"] for e in (await _get(client, eoffice, late["id"]))["timeline"]]
    assert "axis.tracking_expired" in events


async def test_a_dead_status_delivery_is_replayed_with_the_same_message(
        client, gw, axis, eoffice, officer, db, amqp):
    """An operator's replay of a DEAD status delivery sends the same typed message again (same
    message id, same ``status`` block): the eOffice recognises it."""
    from gateway.ops.replay import replay_delivery

    doc = await _sent(client, eoffice, officer, [D1], 206)
    _post(axis, D1, _status(doc, D1, "03", minutes=1))
    first: list[dict] = []
    await wait_for(lambda: _forwarded(amqp, gw, first, 1), timeout=20)
    delivery_id = uuid.UUID(first[0]["delivery_id"])
    await db.execute("UPDATE deliveries SET state = 'DEAD' WHERE id = $1", delivery_id)
    async with gw.pool.acquire() as conn:
        await replay_delivery(conn, gw.router, delivery_id, actor="test")
    gw.wake_relays()
    again: list[dict] = []
    await wait_for(lambda: _forwarded(amqp, gw, again, 1), timeout=20)
    assert again[0]["message_id"] == first[0]["message_id"]
    assert again[0]["status"] == first[0]["status"] and again[0]["kind"] == "status"
