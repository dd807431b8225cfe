"""VdxpClient against the simulator over real HTTP: the exchange itself, auth and rejections."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.axis import (
    AckStatus,
    AxisAuthError,
    AxisNotSupportedError,
    AxisRejectedError,
    MessageType,
    make_axis_client,
)
from gateway.axis.edxml_peek import header_text
from gateway.axis.vdxp import VdxpClient
from gateway.edxml import EdxmlError, parse
from tests.axis import samples
from tests.axis.conftest import AGENCY_A, AGENCY_B, AGENCY_C


async def test_document_travels_and_is_acked(sim, connect):
    vpcp, province = connect(AGENCY_A), connect(AGENCY_B)
    package = samples.edoc()
    sent = await vpcp.send_edoc(package)
    assert sent.doc_id and sent.status == "OK"

    assert await province.count_received(MessageType.EDOC) == 1
    items = await province.list_received(MessageType.EDOC)
    assert [(i.from_, i.to, i.message_type) for i in items] == [
        (samples.VPCP, samples.PROVINCE, MessageType.EDOC)
    ]
    data = await province.fetch(items[0].doc_id)
    assert header_text(data, "DocumentId") == header_text(package, "DocumentId")
    assert data.count(b"TraceHeader>") == 4  # the sender's trace and the axis' own
    assert b"<edXML:OrganId>000.00.00.H00</edXML:OrganId>" in data

    await province.ack(items[0].doc_id, AckStatus.DONE, "đã nhận")
    assert await province.list_received(MessageType.EDOC) == []
    assert [(a.organ_id, a.status, a.description) for a in sim.acks] == [
        (samples.PROVINCE, "done", "đã nhận")
    ]
    receipts = await vpcp.list_sent(sent.doc_id)
    assert [(r.to_code, r.receive_status, r.receiver_doc_id) for r in receipts] == [
        (samples.PROVINCE, "done", items[0].doc_id)
    ]


async def test_to_parameter_overrides_edxml_routing(sim, connect):
    vpcp = connect(AGENCY_A)
    sent = await vpcp.send_edoc(samples.edoc(to=(samples.PROVINCE,)),
                                to=[samples.PROVINCE, samples.PARTY])
    receipts = await vpcp.list_sent(sent.doc_id)
    assert sorted(r.to_code for r in receipts) == [samples.PROVINCE, samples.PARTY]
    assert len({r.receiver_doc_id for r in receipts}) == 2
    party_items = await connect(AGENCY_C).list_received(MessageType.EDOC)
    assert [i.from_ for i in party_items] == [samples.VPCP]


async def test_status_goes_to_response_for_organ(sim, connect):
    vpcp, province = connect(AGENCY_A), connect(AGENCY_B)
    await province.send_status(samples.status(code="03"))
    assert await vpcp.list_received(MessageType.EDOC) == []
    statuses = await vpcp.list_received(MessageType.STATUS)
    assert len(statuses) == 1 and statuses[0].message_type is MessageType.STATUS
    assert await vpcp.count_received(MessageType.STATUS) == 1
    data = await vpcp.fetch(statuses[0].doc_id)
    assert header_text(data, "StatusCode") == "03"
    [summary] = sim.statuses_for(samples.VPCP)
    assert (summary.from_organ, summary.status_code, summary.response_for_organ) == (
        samples.PROVINCE, "03", samples.VPCP
    )
    assert summary.response_for_document_id == "000.00.00.G22,2024/03/01,7816/VPCP-TTĐT"


async def test_unacked_packages_are_listed_again_and_processing_keeps_them(sim, connect):
    province = connect(AGENCY_B)
    first = sim.post_document(samples.edoc(number="1"))
    second = sim.post_document(samples.edoc(number="2"))
    ids = [first.deliveries[samples.PROVINCE], second.deliveries[samples.PROVINCE]]
    assert [i.doc_id for i in await province.list_received(MessageType.EDOC)] == ids
    assert [i.doc_id for i in await province.list_received(MessageType.EDOC)] == ids
    await province.ack(ids[0], AckStatus.PROCESSING)
    await province.ack(ids[1], AckStatus.FAIL, "không đọc được gói tin")
    remaining = await province.list_received(MessageType.EDOC)
    assert [(i.doc_id, i.status) for i in remaining] == [(ids[0], "processing")]
    assert [a.status for a in sim.acks] == ["processing", "fail"]


async def test_directory_lists_the_configured_agencies(connect):
    entries = await connect(AGENCY_B).directory()
    assert [(e.code, e.name) for e in entries] == [
        (a.organ_id, a.name) for a in (AGENCY_A, AGENCY_B, AGENCY_C)
    ]
    assert entries[0].mail == "vpcp@chinhphu.vn" and entries[0].code102 == samples.VPCP


async def test_bad_secret_is_an_auth_error_and_is_not_retried(sim, connect):
    client = connect(AGENCY_B, secret="guessed")
    with pytest.raises(AxisAuthError) as info:
        await client.list_received(MessageType.EDOC)
    assert info.value.code == "bad_signature"
    assert sim.calls == [("getReceivedEdocList", "bad_signature")]
    assert "guessed" not in repr(client) and "guessed" not in str(info.value)


async def test_clock_skew_is_refused_as_stale_timestamp(sim, connect):
    ahead = connect(AGENCY_B, clock=lambda: datetime.now(UTC) + timedelta(minutes=30))
    with pytest.raises(AxisAuthError) as info:
        await ahead.count_received(MessageType.EDOC)
    assert info.value.code == "stale_timestamp"
    within = connect(AGENCY_B, clock=lambda: datetime.now(UTC) - timedelta(minutes=2))
    assert await within.count_received(MessageType.EDOC) == 0


async def test_unknown_system_id_is_refused(sim):
    async with VdxpClient(sim.base_url, "sys-nobody", "x", retries=0) as client:
        with pytest.raises(AxisAuthError) as info:
            await client.directory()
    assert info.value.code == "unknown_system"


async def test_axis_rejections_carry_the_axis_error_code(sim, connect):
    vpcp, province = connect(AGENCY_A), connect(AGENCY_B)
    with pytest.raises(AxisRejectedError) as info:
        await province.fetch("R-999999")
    assert info.value.axis_code == "404" and info.value.operation == "getEdoc"
    with pytest.raises(AxisRejectedError) as info:
        await vpcp.send_edoc(samples.edoc(to=("000.00.00.X99",)))
    assert info.value.axis_code == "422"
    delivered = sim.post_document(samples.edoc()).deliveries[samples.PROVINCE]
    with pytest.raises(AxisRejectedError) as info:
        await connect(AGENCY_C).fetch(delivered)  # addressed to the province, not the party
    assert info.value.axis_code == "403"
    with pytest.raises(AxisRejectedError) as info:  # From says VPCP, caller is the province
        await province.send_edoc(samples.edoc(to=(samples.PARTY,)))
    assert info.value.axis_code == "403"
    assert sim.pending(samples.PARTY) == []


async def test_factory_builds_vdxp_and_reserves_lgsp(sim):
    client = make_axis_client("vdxp", endpoint=sim.base_url, system_id=AGENCY_B.system_id,
                              secret=AGENCY_B.secret)
    async with client:
        assert isinstance(client, VdxpClient)
        assert await client.count_received(MessageType.STATUS) == 0
    with pytest.raises(AxisNotSupportedError) as info:
        make_axis_client("lgsp", endpoint="http://lgsp.example")
    assert info.value.code == "not_supported"


async def test_delivered_document_parses_with_the_codec_and_ends_with_the_axis_hop(sim, connect):
    await connect(AGENCY_A).send_edoc(samples.edoc())
    province = connect(AGENCY_B)
    [item] = await province.list_received(MessageType.EDOC)
    message = parse(await province.fetch(item.doc_id))
    assert message.document_id == "000.00.00.G22,2024/03/01,7816/VPCP-TTĐT"
    assert [t.organ_id for t in message.trace_headers] == [samples.VPCP, sim.organ_id]
    assert sim.sent_to(samples.PROVINCE)[0].parsed().subject == message.subject


async def test_packages_the_codec_refuses_still_travel(sim, connect):
    incomplete = samples.edoc(complete=False)  # no PromulgationInfo/DocumentType/SignerInfo
    with pytest.raises(EdxmlError):
        parse(incomplete)
    await connect(AGENCY_A).send_edoc(incomplete)
    assert len(sim.pending(samples.PROVINCE)) == 1
    hostile = b"<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><x>&e;</x>"
    submission = sim.post_document(hostile, from_organ=samples.VPCP, to=[samples.PARTY])
    fetched = await connect(AGENCY_C).fetch(submission.deliveries[samples.PARTY])
    assert fetched == hostile  # delivered byte for byte, no entity resolved


async def test_multiline_ack_description_travels_as_one_header_line(sim, connect):
    delivered = sim.post_document(samples.edoc()).deliveries[samples.PROVINCE]
    await connect(AGENCY_B).ack(delivered, AckStatus.FAIL, "Gói tin lỗi:\r\nthiếu tệp đính kèm")
    assert [a.description for a in sim.acks] == ["Gói tin lỗi: thiếu tệp đính kèm"]
