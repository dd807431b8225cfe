"""Webhook HMAC signatures and the webhook adapter's answer mapping."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from aiohttp import web

from adapters.contract import Delivery
from adapters.errors import PermanentDeliveryError, TransientDeliveryError, WebhookSignatureError
from adapters.message import parse_delivery
from adapters.signature import sign_webhook, verify_webhook_signature
from adapters.webhook import WebhookAdapter, classify_status
from tests.adapters.helpers import delivery_message

SECRET = b"s3cret"
BODY = b'{"document_id": "x"}'


def test_good_signature_verifies():
    headers = sign_webhook(SECRET, BODY, now=1_700_000_000)
    verify_webhook_signature(SECRET, BODY, headers, now=1_700_000_100)


@pytest.mark.parametrize("tamper", ["body", "secret", "signature", "timestamp"])
def test_tampered_request_is_rejected(tamper):
    headers = sign_webhook(SECRET, BODY, now=1_700_000_000)
    body, secret = BODY, SECRET
    if tamper == "body":
        body = BODY.replace(b"x", b"y")
    elif tamper == "secret":
        secret = b"other"
    elif tamper == "signature":
        headers["X-Edoc-Signature"] = "sha256=" + "0" * 64
    else:
        headers["X-Edoc-Timestamp"] = "1700000001"
    with pytest.raises(WebhookSignatureError) as err:
        verify_webhook_signature(secret, body, headers, now=1_700_000_000)
    assert err.value.code == "WEBHOOK_SIGNATURE_INVALID"


def test_stale_timestamp_is_rejected():
    headers = sign_webhook(SECRET, BODY, now=1_700_000_000)
    with pytest.raises(WebhookSignatureError) as err:
        verify_webhook_signature(SECRET, BODY, headers, now=1_700_000_000 + 301)
    assert err.value.code == "WEBHOOK_TIMESTAMP_STALE"
    with pytest.raises(WebhookSignatureError) as err:
        verify_webhook_signature(SECRET, BODY, {}, now=1_700_000_000)
    assert err.value.code == "WEBHOOK_SIGNATURE_MISSING"


@pytest.mark.parametrize(("status", "verdict"), [
    (200, "delivered"), (201, "delivered"), (204, "delivered"), (409, "delivered"),
    (408, "transient"), (429, "transient"), (500, "transient"), (503, "transient"),
    (400, "permanent"), (401, "permanent"), (404, "permanent"), (422, "permanent"),
])
def test_status_classification(status, verdict):
    assert classify_status(status) == verdict


async def _serve(handler):
    app = web.Application()
    app.router.add_post("/hook", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/hook"


def _delivery() -> Delivery:
    msg = delivery_message(files={"a.pdf": b"%PDF"}, inline=True)
    return Delivery.of(parse_delivery(json.dumps(msg).encode()))


async def test_webhook_request_headers_and_answers():
    seen: list[web.Request] = []
    bodies: list[bytes] = []
    answers = iter([web.json_response({"reference": "EO-9"}), web.Response(status=429),
                    web.Response(status=400, text="bad"), web.Response(status=409)])

    async def handler(request: web.Request) -> web.Response:
        seen.append(request)
        body = await request.read()
        bodies.append(body)
        verify_webhook_signature(SECRET, body, request.headers)
        return next(answers)

    runner, url = await _serve(handler)
    adapter = WebhookAdapter(url, SECRET, timeout=2)
    delivery = _delivery()
    try:
        receipt = await adapter.deliver(delivery)
        assert receipt is not None and receipt.reference == "EO-9"
        with pytest.raises(TransientDeliveryError) as err:
            await adapter.deliver(delivery)
        assert err.value.code == "WEBHOOK_HTTP_429"
        with pytest.raises(PermanentDeliveryError):
            await adapter.deliver(delivery)
        assert (await adapter.deliver(delivery)) is not None  # 409: already there
    finally:
        await adapter.close()
        await runner.cleanup()
    assert seen[0].headers["Idempotency-Key"] == delivery.message_id
    assert seen[0].headers["X-Edoc-Correlation-Id"] == delivery.correlation_id
    payload = json.loads(bodies[0])
    assert payload["attachments"][0]["content_base64"] == "JVBERg=="
    assert "inline_base64" not in payload["attachments"][0]


async def test_webhook_unreachable_and_timeout_are_transient():
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response()

    runner, url = await _serve(slow)
    adapter = WebhookAdapter(url, SECRET, timeout=0.2)
    try:
        with pytest.raises(TransientDeliveryError):
            await adapter.deliver(_delivery())
    finally:
        await runner.cleanup()
    adapter.url = "http://127.0.0.1:9/hook"
    with pytest.raises(TransientDeliveryError) as err:
        await adapter.deliver(_delivery())
    assert err.value.code == "WEBHOOK_UNREACHABLE"
    await adapter.close()


async def test_webhook_body_carries_every_file_exactly():
    """The base64 texts spliced into the encoded JSON decode to each file, in order, with the
    metadata intact — also with 12 files (slot 1 must not match inside slot 10) and metadata
    that looks like a slot."""
    files = {f"f{i}.pdf": b"%PDF-" + bytes([i]) * (i * 37 + 1) for i in range(12)}
    msg = delivery_message(files=files, inline=True,
                           header={"Subject": "\x00file: \"x\" \\u0000 tiếng Việt"})
    adapter = WebhookAdapter("http://127.0.0.1:9/", SECRET)
    body = await adapter.build_body(Delivery.of(parse_delivery(json.dumps(msg).encode())))
    payload = json.loads(body)
    assert [base64.b64decode(a["content_base64"]) for a in payload["attachments"]] \
        == list(files.values())
    assert payload["header"] == msg["header"]
    for att in payload["attachments"]:
        del att["content_base64"]
    plain = json.loads(json.dumps(msg))
    for att in plain["attachments"]:
        del att["inline_base64"]
    assert payload["attachments"] == plain["attachments"]
