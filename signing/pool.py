"""A bounded process pool so that a service never signs or verifies on its event loop.

Rules implemented here:

* Signing and verification are CPU-bound Python (50-100 ms each): they run in worker processes
  (``spawn`` context by default: no inherited event loop, locks or token sessions) through
  ``loop.run_in_executor``.
* Keys are loaded once per worker process and cached there (PKCS#12 parsed once; one PKCS#11
  session and lock per token per worker).
  Signing workers also prepare the stamp font when they start (:func:`signing.fonts.warm_up`).
* The queue is bounded: when ``max_pending`` jobs are already submitted or running, new work is
  rejected at once with :class:`PoolOverloaded` (code ``POOL_OVERLOADED``), so callers can answer
  "busy" (HTTP 503) instead of piling up memory.
* Errors raised in a worker come back as the same :class:`signing.errors.SigningError` subclass
  with the same ``code``.
* Each worker keeps one :class:`signing.verify.Verifier` per verification policy (key: a hash of
  the policy's wire form: DER certificates, trust paths with their modification times,
  revocation-cache contents and every flag), at most :data:`MAX_VERIFIERS` (least recently used
  first out), so trust bundles are loaded once and validation caches stay warm.
* A worker that dies (segfault, ``os._exit``, OOM kill) breaks the executor: the pool replaces
  the executor once per breakage and retries each affected job once; a job that breaks the
  new executor too fails with :class:`WorkerCrashed` (a ``BrokenProcessPool``, code
  ``POOL_WORKER_CRASHED``), and the pool stays usable for the next jobs.
* A worker whose parent process dies (SIGKILL, OOM killer) exits within a second instead of
  lingering as an orphan.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import hashlib
import importlib
import logging
import multiprocessing
import os
import pickle
import threading
import time
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from signing.errors import SigningError
from signing.keys import KeyStore, SignerRole
from signing.sign import SignedPdf, SigningServices, SignRequest, sign_with_services


class PoolOverloaded(SigningError):
    """Too many signing/verification jobs are waiting; try again later."""

    code = "POOL_OVERLOADED"


class PoolClosed(SigningError):
    code = "POOL_CLOSED"


class WorkerCrashed(BrokenProcessPool):
    """A worker process died while running the job, twice (the job was retried once).

    A :class:`~concurrent.futures.process.BrokenProcessPool` (not a ``SigningError``), so that
    callers that already answer a broken pool with "busy, retry" keep doing so; the pool
    itself has been replaced and takes new jobs.
    """

    code = "POOL_WORKER_CRASHED"


log = logging.getLogger(__name__)

#: Verifiers cached per worker process (one per distinct policy).
MAX_VERIFIERS = 8


class RoleNotAllowed(SigningError):
    """The key's configured role may not sign in the requested role."""

    code = "KEY_ROLE_MISMATCH"


#: Which request roles a key configured for a role may sign.
ALLOWED_ROLES = {
    SignerRole.COMPETENT_PERSON: {SignerRole.COMPETENT_PERSON},
    SignerRole.AGENCY: {SignerRole.AGENCY, SignerRole.ATTACHMENT, SignerRole.COPY},
    SignerRole.ATTACHMENT: {SignerRole.ATTACHMENT},
    SignerRole.COPY: {SignerRole.COPY},
}


def check_role(key_role: SignerRole, request_role: SignerRole, alias: str) -> None:
    """Refuse e.g. a competent person's key for the agency seal."""
    if request_role not in ALLOWED_ROLES[key_role]:
        raise RoleNotAllowed(f"key {alias!r} is a {key_role.value} key, not {request_role.value}")


# --- worker side -------------------------------------------------------------------------------

_STORE: KeyStore | None = None
_SERVICES: SigningServices | None = None


def _exit_with_parent(interval: float = 1.0) -> None:
    """End this worker when the process that started it is gone (SIGKILL, OOM killer): an
    orphaned worker would otherwise idle forever, holding its memory and key material."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _init_worker(key_config_path: str | None, services: SigningServices | None) -> None:
    global _STORE, _SERVICES
    _exit_with_parent()
    _STORE = KeyStore.from_file(key_config_path) if key_config_path else None
    _SERVICES = services
    if _STORE is not None:  # a signing worker: have the stamp font ready for the first job
        from signing import fonts

        try:
            fonts.warm_up()
        except SigningError as exc:  # no font: visible signatures will report it themselves
            log.warning("stamp font not warmed up: %s", exc)


def _portable_error(exc: SigningError) -> tuple:
    cls = type(exc)
    return ("error", cls.__module__, cls.__qualname__, exc.code, str(exc), exc.detail)


def _worker_sign(pdf: bytes, request: SignRequest, alias: str):
    try:
        if _STORE is None:
            raise SigningError("signing pool has no key configuration", code="POOL_NO_KEYS")
        key = _STORE.get(alias)
        check_role(key.role, request.role, alias)
        return ("ok", sign_with_services(pdf, request, key, _SERVICES))
    except SigningError as exc:
        return _portable_error(exc)


_CERT_FIELDS = ("trust_roots", "intermediates")


def _policy_to_wire(policy):
    """asn1crypto certificates do not survive pickling between processes: ship them as DER."""
    if policy is None or not dataclasses.is_dataclass(policy):
        return policy
    changes = {
        name: tuple(c.dump() for c in getattr(policy, name))
        for name in _CERT_FIELDS
        if hasattr(policy, name)
    }
    if getattr(policy, "session", None) is not None:
        changes["session"] = None  # a live aiohttp session belongs to the caller's loop
    return dataclasses.replace(policy, **changes)


def _policy_from_wire(policy):
    if policy is None or not dataclasses.is_dataclass(policy):
        return policy
    from asn1crypto import x509

    changes = {
        name: [x509.Certificate.load(der) for der in getattr(policy, name)]
        for name in _CERT_FIELDS
        if hasattr(policy, name)
    }
    return dataclasses.replace(policy, **changes)


def _canonical(value):
    """A hashable, process-stable description of a wire policy value (see :func:`policy_key`)."""
    from signing.trust import RevocationCache

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (type(value).__qualname__,
                tuple((f.name, _canonical(getattr(value, f.name)))
                      for f in dataclasses.fields(value)))  # fmt: skip
    if isinstance(value, (bytes, bytearray)):
        return ("sha256", hashlib.sha256(value).hexdigest())
    if isinstance(value, (str, int, float, bool, type(None), datetime.datetime)):
        return repr(value)
    if isinstance(value, (set, frozenset)):
        return ("set", tuple(sorted(_canonical(v) for v in value)))
    if isinstance(value, (list, tuple)):
        return tuple(_canonical(v) for v in value)
    if isinstance(value, os.PathLike):
        return ("path", os.fspath(value))
    if isinstance(value, RevocationCache):
        return ("revocation_cache", str(value.folder), tuple(sorted(value._crls)),
                tuple(sorted(value._ocsps)))  # fmt: skip
    return ("pickle", hashlib.sha256(pickle.dumps(value)).hexdigest())


def _stat(path) -> tuple:
    try:
        st = os.stat(path)
    except OSError:
        return (os.fspath(path), None)
    return (os.fspath(path), st.st_mtime_ns, st.st_size)


def policy_key(wire_policy) -> str:
    """Cache key of a policy in wire form (:func:`_policy_to_wire`): equal keys give equal
    verdicts. Trust paths count with their modification time and size, so an updated bundle
    on disk gets a new Verifier."""
    paths = getattr(wire_policy, "trust_paths", ()) or ()
    described = (_canonical(wire_policy), tuple(_stat(p) for p in paths))
    return hashlib.sha256(repr(described).encode()).hexdigest()


_VERIFIERS: OrderedDict[str, Any] = OrderedDict()
_VERIFIER_STATS = {"hits": 0, "misses": 0}


def _verifier_for(wire_policy):
    """The worker's Verifier for this policy, built on first use."""
    from signing.verify import Verifier

    key = policy_key(wire_policy)
    verifier = _VERIFIERS.get(key)
    if verifier is not None:
        _VERIFIERS.move_to_end(key)
        _VERIFIER_STATS["hits"] += 1
        return verifier
    _VERIFIER_STATS["misses"] += 1
    verifier = Verifier(_policy_from_wire(wire_policy))
    _VERIFIERS[key] = verifier
    while len(_VERIFIERS) > MAX_VERIFIERS:
        _VERIFIERS.popitem(last=False)
    return verifier


def _portable_report(report):
    """The report without the pyHanko status objects (hundreds of KB pickled, and useless
    once the verdict is computed): what crosses the process boundary stays small."""
    return dataclasses.replace(report, signatures=[
        dataclasses.replace(s, status=None) for s in report.signatures])


def _worker_verify(pdf: bytes, policy):
    try:
        return ("ok", _portable_report(_verifier_for(policy).verify(pdf)))
    except SigningError as exc:
        return _portable_error(exc)


def _worker_stats() -> dict:
    return {"pid": os.getpid(), "verifiers": len(_VERIFIERS), **_VERIFIER_STATS}


def _worker_pid() -> int:
    return os.getpid()


def _raise_portable(result: tuple) -> Any:
    if result[0] == "ok":
        return result[1]
    _, module, qualname, code, message, detail = result
    try:
        cls = getattr(importlib.import_module(module), qualname)
        if not (isinstance(cls, type) and issubclass(cls, SigningError)):
            cls = SigningError
    except (ImportError, AttributeError):
        cls = SigningError
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    exc.code, exc.detail = code, detail
    raise exc


# --- caller side -------------------------------------------------------------------------------


class SigningPool:
    """``await pool.sign(pdf, request, alias)`` / ``await pool.verify(pdf, policy)`` off-loop."""

    def __init__(
        self,
        max_workers: int = 2,
        key_config_path: str | Path | None = None,
        *,
        max_pending: int | None = None,
        services: SigningServices | None = None,
        mp_context: str = "spawn",
    ):
        self.max_workers = max_workers
        self.max_pending = max_pending if max_pending is not None else 4 * max_workers
        self._pending = 0
        self._closed = False
        self._mp_context = multiprocessing.get_context(mp_context)
        self._initargs = (str(key_config_path) if key_config_path else None, services)
        self.restarts = 0  # executors replaced after a worker died
        self._executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.max_workers,
            mp_context=self._mp_context,
            initializer=_init_worker,
            initargs=self._initargs,
        )

    def _replace_broken(self, broken: ProcessPoolExecutor) -> None:
        """Replace ``broken`` by a fresh executor, once: jobs that failed together on the same
        executor see it already replaced and only retry."""
        if self._executor is not broken or self._closed:
            return
        self.restarts += 1
        log.error("signing pool worker died; starting a new executor (restart %d)", self.restarts)
        self._executor = self._new_executor()
        broken.shutdown(wait=False, cancel_futures=True)

    @property
    def pending(self) -> int:
        """Jobs submitted and not finished yet."""
        return self._pending

    async def _submit(self, fn, *args):
        if self._closed:
            raise PoolClosed("signing pool is closed")
        if self._pending >= self.max_pending:
            raise PoolOverloaded(
                f"signing pool busy: {self._pending} jobs pending (limit {self.max_pending})"
            )
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            for attempt in (1, 2):
                executor = self._executor
                try:
                    return await loop.run_in_executor(executor, fn, *args)
                except BrokenProcessPool as exc:
                    self._replace_broken(executor)
                    if attempt == 2 or self._closed:
                        raise WorkerCrashed(
                            f"a worker process died running {fn.__name__} (retried once)"
                        ) from exc
        finally:
            self._pending -= 1

    async def sign(self, pdf: bytes, request: SignRequest, alias: str, *,
                   lane: str = "api") -> SignedPdf:
        """Sign with the key configured under ``alias`` in a worker process."""
        return _raise_portable(await self._submit(_worker_sign, pdf, request, alias))

    async def verify(self, pdf: bytes, policy=None, *, lane: str = "api"):
        """``signing.verify.verify_pdf(pdf, policy)`` in a worker process (policy without a
        live aiohttp session: workers create their own when online)."""
        return _raise_portable(await self._submit(_worker_verify, pdf, _policy_to_wire(policy)))

    async def worker_pid(self) -> int:
        """PID of the worker process that ran this call (diagnostics, tests)."""
        return await self._submit(_worker_pid)

    async def worker_stats(self) -> dict:
        """Of the worker that ran this call: pid, cached verifiers, verifier cache hits/misses."""
        return await self._submit(_worker_stats)

    async def call(self, fn, *args):
        """Run a module-level function in a worker, with the pool's bound and restart rules
        (diagnostics and tests, e.g. a function that kills its worker)."""
        return await self._submit(fn, *args)

    def close(self, wait: bool = True) -> None:
        self._closed = True
        self._executor.shutdown(wait=wait, cancel_futures=True)

    async def __aenter__(self) -> SigningPool:
        return self

    async def __aexit__(self, *exc) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.close)
