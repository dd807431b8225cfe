"""The CRL cache refresher: keeps revocation data local so that verification works offline.

Verification with ``signing.revocation_mode = "hard-fail"`` (the default) needs usable
revocation data for every certificate of a signer's path (ETSI EN 319 102-1 §5.2.6); the
government CAs' responders are often reachable only from the government network. The gateway
therefore keeps a CRL cache (``signing.revocation_cache_dir``, or memory) that the judge reads
together with the PDF's own DSS data, online or offline, and refreshes it in the background:

* **Which CRLs**: the HTTP(S) CRL distribution points of every certificate in the trust
  bundles (a CA's distribution point is written on the certificates it issues: an intermediate
  in the bundle names its root's CRL), those of verified signers' certificates that a bundle CA
  issued (:class:`LearnedCrlUrls`: the issuing CA's own CRL, which no bundle certificate
  names), plus ``signing.crl_urls``. Files an operator copies into
  the folder are taken in at each refresh.
* **Checked before cached** (:func:`signing.trust.check_crl`): the CRL's signature verifies
  with the key of a bundle CA named as its issuer, it is not dated in the future, and it is not
  older than the cached CRL of that issuer (no rollback). A fetch that fails or a CRL that is
  rejected keeps the previous CRL and counts in ``edoc_crl_fetch_errors_total{url,code}``.
* **Bounded**: one GET per URL with a timeout, at most :data:`MAX_CRL_BYTES`, three redirects.
* **Every** ``signing.crl_refresh_interval`` seconds (0: off); after an error, again within
  :data:`RETRY_AFTER` seconds. ``edoc_crl_age_seconds{issuer}`` shows each cached CRL's age.

The pool's workers see a new CRL at once: the cache's file names are part of the verifier key
(:func:`signing.pool.policy_key`), so the next job builds a verifier with the new cache.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
from asn1crypto import pem, x509

from signing.errors import SigningError
from signing.trust import (
    CrlRejected,
    RevocationCache,
    check_crl,
    crl_distribution_urls,
    load_trust_bundle,
)

if TYPE_CHECKING:
    from gateway.config import SigningSettings
    from gateway.ops.metrics import Metrics

log = logging.getLogger(__name__)

#: Largest CRL accepted (bytes).
MAX_CRL_BYTES = 64 * 1024 * 1024
#: Seconds one CRL download may take.
FETCH_TIMEOUT = 60.0
#: Seconds before failed URLs are tried again (when shorter than the refresh interval).
RETRY_AFTER = 300.0
#: ``Services.extensions`` key of an ``aiohttp.ClientSession`` to fetch CRLs with (otherwise
#: the refresher opens its own): a deployment behind a proxy, or the test PKI in-process.
#: ``app.py`` hands it to :func:`refresh_crls`.
HTTP_SESSION = "revocation.http_session"


class CrlFetchError(SigningError):
    code = "CRL_FETCH_FAILED"


class LearnedCrlUrls:
    """CRL distribution points learned from the signers of verified documents.

    A signer's certificate names where its issuing CA publishes its CRL; a trust bundle that
    holds the issuing CA does not (a CA's distribution point is on the certificates it
    issues). The verifier reports a signer's distribution points only when a bundle CA signed
    the certificate (:func:`signing.trust.issued_by_bundle`: a URL from any other certificate
    is the sender's choice), so what is learned here is the CAs' own. At most :attr:`limit`
    URLs are kept; a new one wakes the refresher at once."""

    def __init__(self, limit: int = 256) -> None:
        self.limit = limit
        self.urls: dict[str, None] = {}
        self.changed = asyncio.Event()

    def learn(self, urls) -> None:
        for url in urls:
            if url in self.urls or len(self.urls) >= self.limit:
                continue
            if isinstance(url, str) and url.lower().startswith(("http://", "https://")):
                self.urls[url] = None
                self.changed.set()

    def from_reports(self, reports) -> None:
        """Learn from the verification reports (JSON form) of one document's PDFs."""
        for report in reports:
            for sig in report.get("signatures") or ():
                self.learn((sig.get("signer") or {}).get("crl_urls") or ())


class CrlRefresher:
    """Refreshes ``cache`` from the CRL distribution points of ``trust_paths``' certificates."""

    def __init__(self, cache: RevocationCache, trust_paths: Sequence[str], *,
                 extra_urls: Sequence[str] = (), session: aiohttp.ClientSession | None = None,
                 metrics: Metrics | None = None, learned: LearnedCrlUrls | None = None) -> None:
        self.cache = cache
        self.learned = learned
        self.trust_paths = tuple(trust_paths)
        self.extra_urls = tuple(extra_urls)
        self.session = session
        self.metrics = metrics

    def _cas(self) -> list[x509.Certificate]:
        bundle = load_trust_bundle(self.trust_paths)
        return [*bundle.anchors, *bundle.intermediates]

    def urls(self, cas: Sequence[x509.Certificate]) -> list[str]:
        """The CRL URLs to keep fresh: the bundle certificates' distribution points, then
        ``crl_urls``."""
        urls = crl_distribution_urls(cas)
        learned = tuple(self.learned.urls) if self.learned is not None else ()
        return urls + [u for u in (*self.extra_urls, *learned) if u not in urls]

    async def refresh(self) -> dict[str, str]:
        """One round: fetch, check and cache every CRL. Returns ``{url: outcome}`` with outcome
        ``updated``, ``unchanged`` or an error code."""
        await asyncio.to_thread(self.cache.reload)
        cas = await asyncio.to_thread(self._cas)
        own = self.session is None
        session = self.session or aiohttp.ClientSession()
        try:
            urls = self.urls(cas)
            outcomes = await asyncio.gather(*(self._one(session, url, cas) for url in urls))
        finally:
            if own:
                await session.close()
        self._publish_ages()
        return dict(zip(urls, outcomes, strict=True))

    async def _one(self, session: aiohttp.ClientSession, url: str,
                   cas: Sequence[x509.Certificate]) -> str:
        try:
            data = await self._fetch(session, url)
            crl, _issuer = check_crl(data, cas)
            updated = await asyncio.to_thread(self.cache.update_crl, crl)
        except (CrlRejected, CrlFetchError) as exc:
            log.warning("CRL not refreshed; the previous one is kept",
                        extra={"url": url, "code": exc.code, "error": str(exc)})
            if self.metrics is not None:
                self.metrics.crl_fetch_errors.labels(url, exc.code).inc()
            return exc.code
        if updated:
            log.info("CRL refreshed", extra={"url": url, "issuer": crl.issuer.human_friendly})
        return "updated" if updated else "unchanged"

    @staticmethod
    async def _fetch(session: aiohttp.ClientSession, url: str) -> bytes:
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT),
                                   max_redirects=3) as resp:
                if resp.status != 200:
                    raise CrlFetchError(f"HTTP {resp.status} from {url}")
                if (resp.content_length or 0) > MAX_CRL_BYTES:
                    raise CrlFetchError(f"CRL of {resp.content_length} bytes is too large",
                                        code="CRL_TOO_LARGE")
                body = bytearray()
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    body += chunk
                    if len(body) > MAX_CRL_BYTES:
                        raise CrlFetchError("CRL too large", code="CRL_TOO_LARGE")
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise CrlFetchError(f"{type(exc).__name__}: {exc}") from None
        data = bytes(body)
        if pem.detect(data):  # RFC 5280 says DER; some CAs publish PEM
            try:
                kinds = [(k, der) for k, _h, der in pem.unarmor(data, multiple=True)]
            except ValueError as exc:
                raise CrlRejected(f"bad PEM: {exc}", code="CRL_UNREADABLE") from None
            data = next((der for k, der in kinds if k == "X509 CRL"), b"")
        return data

    def _publish_ages(self) -> None:
        if self.metrics is None:
            return
        oldest: dict[str, float] = {}
        for entry in self.cache.crl_entries():
            stamp = entry.this_update.timestamp()
            oldest[entry.issuer] = min(stamp, oldest.get(entry.issuer, stamp))
        gauge = self.metrics.crl_age_seconds
        gauge.clear()
        for issuer, stamp in oldest.items():
            gauge.labels(issuer).set_function(lambda s=stamp: time.time() - s)

    async def run(self, stop: asyncio.Event, interval: float) -> None:
        """Refresh now, then every ``interval`` seconds (sooner after an error, and as soon as
        a URL is learned from a verified signer) until ``stop``."""
        while not stop.is_set():
            if self.learned is not None:
                self.learned.changed.clear()
            outcomes = await self.refresh()
            failed = any(o not in ("updated", "unchanged") for o in outcomes.values())
            events = [stop] + ([self.learned.changed] if self.learned is not None else [])
            waits = [asyncio.ensure_future(e.wait()) for e in events]
            try:
                await asyncio.wait(waits, timeout=min(interval, RETRY_AFTER) if failed
                                   else interval, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()


async def refresh_crls(stop: asyncio.Event, *, settings: SigningSettings,
                       cache: RevocationCache | None, session: Any, metrics: Metrics,
                       learned: LearnedCrlUrls) -> None:
    """Background worker of the gateway (started by ``app.py``): keeps ``cache`` (the
    judge's, none: nothing to do) fresh per ``settings`` (``signing.*``) until ``stop``, fetching
    with ``session`` (an ``aiohttp.ClientSession``; None: its own)."""
    if cache is None or settings.crl_refresh_interval <= 0:
        await stop.wait()
        return
    refresher = CrlRefresher(cache, settings.trust_bundles, extra_urls=settings.crl_urls,
                             session=session, metrics=metrics, learned=learned)
    await refresher.run(stop, settings.crl_refresh_interval)
