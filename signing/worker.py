"""The worker side of :class:`signing.pool.SigningPool`: what runs in a worker process.

Rules implemented here:

* Keys are loaded once per worker process and cached there (PKCS#12 parsed once; one PKCS#11
  session and lock per token per worker). Signing workers also prepare the stamp font when they
  start (:func:`signing.fonts.warm_up`).
* Every job runs under the worker's address-space limit (``RLIMIT_AS``, set by
  :func:`serve` before the first job): a PDF that asks for more memory than that (a
  cross-reference table declaring billions of entries, a decompression bomb) fails with
  ``MemoryError``, answered as :class:`signing.errors.PdfTooComplexError`; so does a PDF nested
  deeper than the interpreter's recursion limit. After a ``MemoryError`` the worker answers and
  exits, and the pool starts a fresh one: nothing half-freed is carried into the next job.
* Errors raised in a worker come back as the same :class:`signing.errors.SigningError` subclass
  with the same ``code`` (:func:`raise_portable`).
* Each worker keeps one :class:`signing.verify.Verifier` per verification policy (key: a hash of
  the policy's wire form: DER certificates, trust paths with their modification times,
  revocation-cache contents and every flag), at most :data:`MAX_VERIFIERS` (least recently used
  first out), so trust bundles are loaded once and validation caches stay warm.
* A worker whose parent process dies (SIGKILL, OOM killer) exits within a second instead of
  lingering as an orphan.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import importlib
import logging
import os
import pickle
import resource
import signal
import threading
import time
from collections import OrderedDict
from typing import Any

from signing.errors import PdfTooComplexError, PdfUnreadableError, SigningError
from signing.keys import KeyStore, SignerRole
from signing.keys.health import canary, check_validity, validity
from signing.sign import SigningServices, SignRequest, sign_with_services

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


def _unexpected(exc: Exception) -> tuple:
    """An exception the libraries raised on this PDF that no rule expected (pyHanko's
    ``TypeError`` on ``/AcroForm 5``, an ``IndexError`` on a two-number ``/Rect``…): the input
    is one the library cannot process — ``PDF_UNREADABLE``, never a server error, and never a
    fault that makes intake fetch the package again forever. Logged with its traceback."""
    log.warning("unexpected error on a PDF", exc_info=exc)
    return _portable_error(PdfUnreadableError(
        f"cannot process the PDF ({type(exc).__name__}: {str(exc)[:200]})",
        detail={"exception": type(exc).__name__}))


def _pdf_job(fn):
    """A job on a PDF: its result as ``("ok", value)``, a :class:`SigningError` in portable
    form, any other library exception as the input's ``PDF_UNREADABLE`` (:func:`_unexpected`);
    ``MemoryError`` and ``RecursionError`` go on to the job loop (``PDF_TOO_COMPLEX``)."""

    @functools.wraps(fn)
    def run(*args):
        try:
            return ("ok", fn(*args))
        except SigningError as exc:
            return _portable_error(exc)
        except (MemoryError, RecursionError):
            raise
        except Exception as exc:
            return _unexpected(exc)

    return run


@_pdf_job
def _worker_sign(pdf: bytes, request: SignRequest, alias: str):
    if _STORE is None:
        raise SigningError("signing pool has no key configuration", code="POOL_NO_KEYS")
    key = _STORE.get(alias)
    check_role(key.role, request.role, alias)
    check_validity(key)  # an expired key never signs (KEY_EXPIRED / KEY_NOT_YET_VALID)
    return sign_with_services(pdf, request, key, _SERVICES)


def _worker_key_check(alias: str) -> dict[str, Any]:
    """Health of key ``alias`` as this worker sees it: its certificate's validity period and
    the outcome of a canary signature (``failure``: None or ``(code, message)``). A key that
    cannot be loaded raises its error (``KEY_LOAD``/``KEY_TOKEN``)."""
    if _STORE is None:
        raise SigningError("signing pool has no key configuration", code="POOL_NO_KEYS")
    key = _STORE.get(alias)
    try:
        not_before, not_after = validity(key)
    except SigningError:
        raise
    except Exception as exc:  # a library fault while loading: the key's, never the caller's
        raise SigningError(f"key {alias!r} cannot be loaded: {type(exc).__name__}",
                           code="KEY_LOAD") from None
    failure = None
    try:
        canary(key)
    except SigningError as exc:
        failure = (exc.code, str(exc))
    except Exception as exc:
        failure = ("KEY_CANARY_FAILED", f"{type(exc).__name__}: {exc}"[:300])
    return {"not_before": not_before, "not_after": not_after, "failure": failure}


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


@_pdf_job
def _worker_verify(pdf: bytes, policy):
    return _portable_report(_verifier_for(policy).verify(pdf))


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




# --- the worker's loop -------------------------------------------------------------------------


def _limit_memory(memory_bytes: int | None) -> None:
    """Cap this process's address space (``RLIMIT_AS``): an allocation past it raises
    ``MemoryError`` in the job instead of growing until the kernel kills something."""
    if not memory_bytes:
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        memory_bytes = min(memory_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, hard))


def _run_job(fn, args) -> tuple[tuple, bool]:
    """``(answer, keep_going)``. Answers: ``("done", value)`` where value is what ``fn``
    returned (``_worker_*`` functions already wrap their errors), ``("error", …)`` for a
    :class:`PdfTooComplexError`, ``("raised", exception)`` for anything else."""
    try:
        return ("done", fn(*args)), True
    except MemoryError:
        # the frames holding the big allocations are gone by now; answer, then make room
        global _RESERVE
        _RESERVE = None
        exc = PdfTooComplexError("the PDF needs more memory than a job may use")
        return _portable_error(exc), False
    except RecursionError:
        exc = PdfTooComplexError("the PDF's objects are nested too deeply")
        return _portable_error(exc), True
    except SigningError as exc:
        return _portable_error(exc), True
    except Exception as exc:
        return ("raised", _picklable(exc)), True


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


#: Exit status of a worker that ran out of memory where it could not even answer (a
#: ``MemoryError`` raised again while handling the first): the pool reads it as PDF_TOO_COMPLEX.
EXIT_OUT_OF_MEMORY = 86

#: What a worker sends once it is ready for jobs, and as soon as it has a job.
READY = "ready"
STARTED = "started"

#: Freed on the first ``MemoryError`` so that the answer can still be built and sent.
_RESERVE: bytearray | None = None


def serve(conn, initargs: tuple, memory_bytes: int | None) -> None:
    """Entry point of a worker process: initialise, then answer jobs from ``conn`` one at a
    time until the pipe closes (or a job ran out of memory). A ``MemoryError`` that escapes
    everything ends the process with :data:`EXIT_OUT_OF_MEMORY` (``os._exit`` allocates
    nothing). SIGINT is ignored: Ctrl-C on a terminal reaches the whole process group, and the
    parent process, which owns the pool, ends its workers itself (a worker's own
    KeyboardInterrupt would only print a traceback)."""
    global _RESERVE
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _init_worker(*initargs)
    _limit_memory(memory_bytes)
    _RESERVE = bytearray(8 * 1024 * 1024)
    conn.send(READY)
    try:
        _serve(conn)
    except MemoryError:
        os._exit(EXIT_OUT_OF_MEMORY)


def _serve(conn) -> None:
    global _RESERVE
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        conn.send(STARTED)  # from here on the job counts as run: it is never sent again
        answer, keep_going = _run_job(*job)
        try:
            conn.send(answer)
        except (EOFError, OSError):
            return
        except MemoryError:
            conn.send(_portable_error(PdfTooComplexError("the answer does not fit in memory")))
            keep_going = False
        del job, answer
        if not keep_going:
            return
