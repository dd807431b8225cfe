"""Builders for delivery messages, an attachment server and queue readers (adapter tests)."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from aiohttp import web

from gateway.bus.publisher import ConfirmedPublisher
from gateway.bus.topology import Topology

AGENCY = "000.00.01.H99"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def delivery_message(agency: str = AGENCY, *, files: dict[str, bytes] | None = None,
                     base_url: str = "http://127.0.0.1:9/files", inline: bool = False,
                     announce: dict[str, bytes] | None = None, **overrides: Any) -> dict[str, Any]:
    """A valid ``edoc.delivery/1`` message; ``announce`` overrides the bytes hashed per file."""
    attachments = []
    for index, (name, data) in enumerate((files or {}).items()):
        declared = (announce or {}).get(name, data)
        att: dict[str, Any] = {
            "id": f"att-{index}", "name": name, "description": None,
            "content_type": "application/pdf", "size": len(declared),
            "sha256": sha256(declared), "url": f"{base_url}/{name}",
        }
        if inline:
            att["inline_base64"] = base64.b64encode(data).decode()
        attachments.append(att)
    msg = {
        "schema": "edoc.delivery/1",
        "message_id": str(uuid.uuid4()),
        "delivery_id": str(uuid.uuid4()),
        "document_id": str(uuid.uuid4()),
        "agency": agency,
        "correlation_id": uuid.uuid4().hex,
        "edxml_document_id": "000.00.00.H99,2026/01/01,1",
        "bussiness_doc_type": 0,
        "header": {"Subject": "Công văn thử nghiệm", "Code": {"CodeNumber": "1"}},
        "signature": {"verdict": "valid", "files": []},
        "attachments": attachments,
        "created_at": "2026-01-01T00:00:00Z",
    }
    msg.update(overrides)
    return msg


async def publish_delivery(publisher: ConfirmedPublisher, topology: Topology,
                           msg: dict[str, Any], *, agency: str = AGENCY) -> None:
    await publisher.publish_confirmed(
        topology.work_exchange, topology.agency_routing_key(agency),
        json.dumps(msg, ensure_ascii=False).encode(), message_id=msg["message_id"],
        correlation_id=msg["correlation_id"],
        headers={"x-delivery-id": msg["delivery_id"], "x-document-id": msg["document_id"],
                 "x-agency": agency})


async def drain(channel: AbstractChannel, queue_name: str) -> list[AbstractIncomingMessage]:
    """Take (and ack) every message currently in a queue."""
    queue = await channel.get_queue(queue_name, ensure=False)
    out = []
    while (msg := await queue.get(no_ack=True, fail=False)) is not None:
        out.append(msg)
    return out


@dataclass
class OutcomeLog:
    """Accumulates outcomes read from the outcomes queue."""

    channel: AbstractChannel
    queue_name: str
    items: list[dict[str, Any]] = field(default_factory=list)

    async def poll(self) -> list[dict[str, Any]]:
        for msg in await drain(self.channel, self.queue_name):
            body = json.loads(msg.body)
            assert msg.message_id == body["outcome_id"]
            body["_correlation_id"] = msg.correlation_id
            self.items.append(body)
        return self.items

    def of(self, message_id: str) -> list[str]:
        return [o["outcome"] for o in self.items if o["message_id"] == message_id]


class FileServer:
    """Serves attachment bytes at ``/files/<name>``; records the Authorization headers."""

    def __init__(self, files: dict[str, bytes] | None = None) -> None:
        self.files: dict[str, bytes] = dict(files or {})
        self.auth: list[str | None] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def _get(self, request: web.Request) -> web.Response:
        self.auth.append(request.headers.get("Authorization"))
        data = self.files.get(request.match_info["name"])
        if data is None:
            return web.Response(status=404)
        return web.Response(body=data, content_type="application/pdf")

    async def __aenter__(self) -> FileServer:
        app = web.Application()
        app.router.add_get("/files/{name}", self._get)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/files"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()
