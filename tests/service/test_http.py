import asyncio
import subprocess
import uuid

import pytest

from gateway.api.auth import create_client
from tests.conftest import SERVED, wait_for


async def _token(db, role, **kw):
    return (await create_client(db, name=f"{role}-test", role=role, **kw)).token


async def _document(db, sender: str, receiver: str) -> uuid.UUID:
    doc_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO documents (id, direction, dedup_key, edxml_document_id, sender_code, state,"
        " correlation_id, subject) VALUES ($1, 'inbound', $2, $2, $3, 'ROUTED', 'c', 'Công văn')",
        doc_id, f"inbound:{doc_id}", sender)
    await db.execute(
        "INSERT INTO deliveries (id, document_id, agency_code, message_id) VALUES ($1, $2, $3, $4)",
        uuid.uuid4(), doc_id, receiver, uuid.uuid4())
    return doc_id


async def test_health_and_metrics_need_no_token(client):
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200, await ready.text()
    metrics = await client.get("/metrics")
    assert metrics.status == 200
    assert "edoc_outbox_backlog" in await metrics.text()


async def test_auth_401_403_and_agency_scope(client, db):
    mine = await _document(db, "000.00.00.G22", SERVED[0])
    theirs = await _document(db, "000.00.00.G22", SERVED[1])
    eoffice = await _token(db, "eoffice", agencies=[SERVED[0]])
    officer = await _token(db, "officer", key_aliases=["seal"])
    operator = await _token(db, "operator")

    resp = await client.get("/v1/documents")
    assert resp.status == 401
    body = await resp.json()
    assert body["error"]["code"] == "AUTH_REQUIRED"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")

    resp = await client.get("/v1/documents", headers={"Authorization": "Bearer edoc_wrong"})
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "AUTH_INVALID"

    resp = await client.get("/v1/documents", headers={"Authorization": f"Bearer {officer}"})
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "ROLE_FORBIDDEN"

    auth = {"Authorization": f"Bearer {eoffice}"}
    listed = await (await client.get("/v1/documents", headers=auth)).json()
    assert [d["id"] for d in listed["documents"]] == [str(mine)]
    assert (await client.get(f"/v1/documents/{mine}", headers=auth)).status == 200
    hidden = await client.get(f"/v1/documents/{theirs}", headers=auth)
    assert hidden.status == 404  # out of scope looks like absent: ids cannot be probed

    everything = await (await client.get(
        "/v1/documents", headers={"Authorization": f"Bearer {operator}"})).json()
    assert {d["id"] for d in everything["documents"]} == {str(mine), str(theirs)}


async def test_revoked_token_is_refused(client, db):
    token = await _token(db, "operator")
    await db.execute("UPDATE api_clients SET revoked_at = now()")
    resp = await client.get("/v1/documents", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 401


async def test_request_and_correlation_ids(client):
    resp = await client.get("/healthz", headers={"X-Correlation-Id": "doc-42"})
    assert resp.headers["X-Correlation-Id"] == "doc-42"
    assert resp.headers["X-Request-Id"]
    missing = await client.get("/nowhere")
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "NOT_FOUND"


async def _rabbit(*args: str) -> None:
    await asyncio.to_thread(subprocess.run, ["rabbitmqctl", *args], check=True,
                            capture_output=True, timeout=120)


async def test_readiness_follows_rabbitmq(client):
    async def status() -> int:
        return (await client.get("/readyz")).status

    assert await status() == 200
    await _rabbit("stop_app")
    try:
        await wait_for(lambda: _is(status, 503), timeout=30, interval=0.2)
        body = await (await client.get("/readyz")).json()
        assert body["checks"]["rabbitmq"] == "disconnected"
        assert "rabbitmq" in body["error"]["message"]
    finally:
        await _rabbit("start_app")
    await wait_for(lambda: _is(status, 200), timeout=60, interval=0.5)


async def _is(status, expected: int) -> bool:
    return await status() == expected


@pytest.mark.parametrize("declared, served", [
    ("application/pdf", "application/pdf"),
    ("Application/PDF; name=x.pdf", "application/pdf"),
    ("text/html", "application/octet-stream"),
    ("image/svg+xml", "application/octet-stream"),
    (None, "application/octet-stream"),
    ("garbage;;;", "application/octet-stream"),
])
def test_attachment_served_type(declared, served):
    from gateway.api.documents import _served_type

    assert _served_type(declared) == served
