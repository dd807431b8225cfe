"""Liveness, readiness and metrics endpoints (no authentication)."""

from __future__ import annotations

import asyncio
import os

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.db.migrate import pending_migrations
from gateway.pki.keyhealth import monitor as key_monitor
from gateway.services import SERVICES, Services


async def healthz(request: web.Request) -> web.Response:
    """The process is alive and its event loop answers."""
    return web.json_response({"status": "ok"})


def signing_check(svc: Services) -> str:
    """The judge's pool can take work and every configured trust bundle and key file is there
    (a missing bundle makes every verdict wrong: a server fault, not the documents')."""
    signing = svc.settings.signing
    for path in signing.trust_bundles:
        if not os.access(path, os.R_OK):
            return f"trust bundle unreadable: {path}"
    if signing.keys_file and not os.access(signing.keys_file, os.R_OK):
        return f"keys file unreadable: {signing.keys_file}"
    if svc.judge is not None and (problem := svc.judge.pool.health()["problem"]):
        return f"verification pool: {problem}"
    return "ok"


async def readyz(request: web.Request) -> web.Response:
    """PostgreSQL reachable with migrations current, RabbitMQ connected, the signing pool able
    to take work with its trust material in place; 503 naming what fails. With a key file,
    ``keys`` summarises the signing keys' health (``degraded`` also lists ``keys`` under
    ``degraded``) without changing the status (:mod:`gateway.pki.keyhealth` says why)."""
    svc = request.app[SERVICES]
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(3):
            async with svc.pool.acquire() as conn:
                pending = await pending_migrations(conn)
        checks["database"] = "ok" if not pending else (
            "migrations pending: " + ", ".join(m.version for m in pending))
    except Exception as exc:  # any failure means not ready
        checks["database"] = f"unreachable: {type(exc).__name__}"
    checks["rabbitmq"] = "ok" if svc.publisher.is_connected else "disconnected"
    checks["signing"] = signing_check(svc)
    ready = all(v == "ok" for v in checks.values())
    failing = [k for k, v in checks.items() if v != "ok"]
    body: dict[str, object] = {"status": "ready" if ready else "not ready", "checks": checks}
    keys = key_monitor(svc)
    if keys is not None:
        # reported, never a reason to be unready: see gateway.pki.keyhealth
        body["keys"] = summary = keys.summary()
        if summary["status"] == "degraded":
            body["degraded"] = ["keys"]
    if not ready:
        body["error"] = {"code": "NOT_READY", "message": "not ready: " + ", ".join(
            f"{k} {checks[k]}" for k in failing)}
    return web.json_response(body, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    try:
        async with asyncio.timeout(3):
            await svc.metrics.refresh_from_db(svc.pool)
    except Exception:  # scrape still answers with what it has
        pass
    if (keys := key_monitor(svc)) is not None:
        keys.export_all()
    body = generate_latest(svc.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
