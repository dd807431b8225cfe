"""The collaborators of one gateway process, as handlers and per-process helpers see them.

``app.py`` builds them and stores one :class:`Services` under :data:`SERVICES` in the
web application; HTTP handlers take it from ``request.app[SERVICES]``. Flows are given the
collaborators they use one by one (see ``app.py``); nothing here knows the
``Gateway`` that wires them, so that nothing below ``app.py`` imports it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    import asyncpg

    from gateway.bus.publisher import ConfirmedPublisher
    from gateway.bus.relay import OutboxRelay
    from gateway.bus.topology import Topology
    from gateway.config import Settings
    from gateway.inbound.intake import Intake
    from gateway.inbound.routing import Router
    from gateway.inbound.verification import PdfJudge
    from gateway.ops.metrics import Metrics
    from gateway.pki.revocation import LearnedCrlUrls
    from signing.pool import SigningPool


def _no_signing_pool() -> SigningPool:
    raise RuntimeError("no signing pool wired (app.py sets Services.signing_pool)")


@dataclass(eq=False)
class Services:
    """What handlers use. ``pool``, ``judge`` and ``intake`` are set when the gateway starts
    (handlers only run after that)."""

    settings: Settings
    metrics: Metrics
    publisher: ConfirmedPublisher
    topology: Topology
    router: Router
    #: CRL distribution points learned from verified signers (fed by intake, read by the
    #: CRL refresher).
    learned_crl_urls: LearnedCrlUrls
    #: Set when the gateway stops.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    pool: asyncpg.Pool = None  # type: ignore[assignment]
    judge: PdfJudge | None = None
    intake: Intake = None  # type: ignore[assignment]
    #: The outbox relays of this process (the queue relay and one per axis connection).
    relays: list[OutboxRelay] = field(default_factory=list)
    #: The pool ``/v1/sign`` signs in, created on first use (key health checks run in it).
    signing_pool: Callable[[], SigningPool] = _no_signing_pool
    #: Per-process state helpers keep (signing backend, rate limits, key health monitor …).
    extensions: dict[str, object] = field(default_factory=dict)

    def axis_for(self, agency: str, arrival: str | None = None) -> str | None:
        """The axis connection that carries ``agency``'s messages (its configured one, else the
        one the document arrived on, else the only one configured)."""
        for served in self.settings.agencies:
            if served.code == agency and served.axis:
                return served.axis
        if arrival:
            return arrival
        return self.settings.axis[0].name if len(self.settings.axis) == 1 else None

    def wake_relays(self) -> None:
        """Something was written to the outbox: send it now rather than at the next poll."""
        for relay in self.relays:
            relay.wake()


SERVICES: web.AppKey[Services] = web.AppKey("services", Services)
