"""Answers that do not keep the protocol's promises are typed errors, never empty successes.

A tiny canned HTTP server (real sockets) plays a misbehaving axis.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from gateway.axis import (
    AxisAuthError,
    AxisProtocolError,
    AxisRejectedError,
    AxisTransientError,
    MessageType,
)
from gateway.axis.vdxp import VdxpClient, parse_envelope
from gateway.axis.vdxp_auth import verify_headers
from tests.axis import samples

OK = {"status": "OK", "ErrorCode": "0", "ErrorDesc": "Success"}


@pytest.fixture
async def canned() -> AsyncIterator[tuple[VdxpClient, dict]]:
    answers: dict[str, web.Response] = {}
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return answers[request.match_info["op"]]

    app = web.Application()
    app.router.add_route("*", "/vdxp/{op}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    client = VdxpClient(f"http://{host}:{port}/vdxp/", "sys-x", "k", retries=0)
    answers["_seen"] = seen  # type: ignore[assignment]
    yield client, answers
    await client.close()
    await runner.cleanup()


@pytest.mark.parametrize(
    ("call", "op", "body"),
    [
        (lambda c: c.list_received(MessageType.EDOC), "getReceivedEdocList", OK),
        (lambda c: c.list_received(MessageType.EDOC), "getReceivedEdocList",
         {**OK, "data": [{"from": "x"}]}),
        (lambda c: c.fetch("D1"), "getEdoc", {**OK, "data": "%%% not base64 %%%"}),
        (lambda c: c.fetch("D1"), "getEdoc", {**OK, "data": ""}),
        (lambda c: c.send_edoc(samples.edoc()), "sendEdoc", {**OK, "data": None}),
        (lambda c: c.count_received(MessageType.EDOC), "countReceiveEdoc", OK),
        (lambda c: c.list_sent("D1"), "getSentEdocList", {**OK, "data": [{"sendStatus": "x"}]}),
        (lambda c: c.directory(), "getAgenciesList", {**OK, "data": {"id": 1}}),
        (lambda c: c.directory(), "getAgenciesList", {"data": []}),
        (lambda c: c.directory(), "getAgenciesList", {**OK, "status": "FAIL", "data": []}),
    ],
)
async def test_incomplete_answers_are_protocol_errors(canned, call, op, body):
    client, answers = canned
    answers[op] = web.json_response(body)
    with pytest.raises(AxisProtocolError):
        await call(client)


async def test_requests_are_signed_and_send_edoc_is_multipart(canned):
    client, answers = canned
    answers["sendEdoc"] = web.json_response({**OK, "DocId": 42})
    result = await client.send_edoc(samples.edoc(), to=[samples.PROVINCE])
    assert result.doc_id == "42"
    headers = answers["_seen"][-1]
    assert verify_headers(headers, {"sys-x": "k"}.get, client._clock()) == "sys-x"
    assert headers["XroadVnpt-from"] == samples.VPCP  # read from the edXML From
    assert headers["XroadVnpt-to"] == '["000.00.00.H53"]'
    assert headers["XroadVnpt-messagetype"] == "edoc"
    assert headers["Content-Type"].startswith("multipart/form-data")


def test_parse_envelope_mapping():
    assert parse_envelope("x", 200, b'{"status":"OK","ErrorCode":0,"data":[]}')["data"] == []
    with pytest.raises(AxisRejectedError) as info:
        parse_envelope("x", 200, b'{"status":"FAIL","ErrorCode":"-1","ErrorDesc":"sai"}')
    assert (info.value.axis_code, info.value.axis_desc) == ("-1", "sai")
    with pytest.raises(AxisAuthError):
        parse_envelope("x", 401, b"Unauthorized")
    with pytest.raises(AxisTransientError) as transient:
        parse_envelope("x", 504, b"")
    assert transient.value.http_status == 504
    with pytest.raises(AxisTransientError):
        parse_envelope("x", 429, b"{}")
    for body in (b"[]", b"null", b"<html/>", b""):
        with pytest.raises(AxisProtocolError):
            parse_envelope("x", 200, body)
    with pytest.raises(AxisProtocolError):
        parse_envelope("x", 404, b"<html>Not Found</html>")


def test_package_base64_decoding_is_the_stdlibs(monkeypatch):
    """getEdoc's ``data``: the pybase64 fast path decodes (and refuses) exactly as the stdlib
    strict decoder with white-space removed."""
    import base64 as b64
    import binascii
    import os
    import random

    from gateway.axis import vdxp

    rnd = random.Random(7)
    cases = [b64.b64encode(os.urandom(n)).decode() for n in (0, 1, 2, 3, 100, 5000)]
    cases += ["QUJD\nREVG", "QUJD REVG", "QUJ", "QUJD=", "QU=D", "abc$", "QUJDéREVG", " ",
              "QUJD\u2003REVG", "QUJDREVG\x0b", "QUJD\r\nREVG\r\n"]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/= \n-_$"
    cases += ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 24)))
              for _ in range(3000)]

    def outcome(text):
        try:
            return vdxp._decode_package(text)
        except (binascii.Error, ValueError):
            return "error"

    fast = [outcome(c) for c in cases]
    from gateway.edxml import payload

    monkeypatch.setattr(payload, "_pybase64", None)
    assert [outcome(c) for c in cases] == fast


@pytest.mark.parametrize("text", ["QUJD=", "QUJD\u2003REVG", "QUJDREVG\x0b", "QUJD\xa0REVG",
                                  "QUJD\x1cREVG", "QUJD====", "$QUJD"])
def test_package_base64_outside_the_alphabet_is_refused(text):
    """getEdoc's ``data`` is strict: only the alphabet, final padding and XML white space (the
    old decoder also dropped Unicode spaces and form feeds and accepted a stray final "=")."""
    import binascii

    from gateway.axis import vdxp

    with pytest.raises(binascii.Error):
        vdxp._decode_package(text)


def test_package_base64_with_line_breaks_is_accepted():
    from gateway.axis import vdxp

    assert vdxp._decode_package("QUJD\r\nREVG\r\n") == b"ABCDEF"
    assert vdxp._decode_package(" QUJD\tREVG\n") == b"ABCDEF"


@pytest.mark.parametrize(("header", "expected"), [
    ("multipart/form-data; boundary=abc", True), ("Multipart/Form-Data;boundary=x", True),
    ("  multipart/mixed", True), ("application/xml", False), ("application/multipart", False),
    ("", False), (None, False),
])
def test_multipart_bodies_recognised_from_the_raw_header(header, expected):
    from gateway.axis import is_multipart

    assert is_multipart(header) is expected
