"""A bounded process pool so that a service never signs or verifies on its event loop, and no
PDF can take more than its share of memory, time or capacity.

Rules implemented here (the worker side is :mod:`signing.worker`):

* Signing and verification are CPU-bound Python (10-100 ms each): they run in worker processes
  (``spawn`` context by default: no inherited event loop, locks or token sessions), one job at a
  time per worker, sent over the worker's own pipe from a helper thread (never on the loop).
* **Memory**: every worker runs under an address-space limit (``memory_mb``); a job over it is
  answered :class:`~signing.errors.PdfTooComplexError` (``PDF_TOO_COMPLEX``) and its worker is
  replaced.
* **Time**: every job has a wall-clock limit (``job_timeout``); a job over it has its worker
  killed (SIGKILL: a loop in C code cannot be interrupted any other way) and is answered
  :class:`~signing.errors.PdfTimeoutError` (``PDF_TIMEOUT``).
* **No job runs twice.** A worker that dies during a job (segfault, ``os._exit``, the OOM killer)
  fails that job with :class:`WorkerCrashed` (``POOL_WORKER_CRASHED``); the pool starts a new
  worker in its place and stays usable. A poison PDF costs one worker start, never two.
* **The pool's faults are not the document's**: a worker that cannot be started is
  :class:`PoolUnavailable` (``POOL_UNAVAILABLE``), a pool closed under a job :class:`PoolClosed`
  — both "try again later", never a verdict on the PDF.
* **Capacity**: at most ``max_pending`` jobs per lane are submitted or running (API callers
  filling their lane never make intake jobs wait for room); past that new work is refused at
  once with :class:`PoolOverloaded` (``POOL_OVERLOADED``), so that callers answer "busy"
  (HTTP 503) instead of piling up memory.
* **Lanes**: a job names its lane, ``intake`` (documents arriving from the axis) or ``api``
  (callers of the HTTP API). A free worker goes to the oldest intake job first; API jobs never
  occupy the last ``reserved_for_intake`` workers, so inbound documents never wait behind API
  callers, whatever they send.
* ``close()`` kills busy workers at once (a stuck job cannot hold up a shutdown); jobs waiting
  for a worker fail with :class:`PoolClosed`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import multiprocessing
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Literal

from signing import worker as _w
from signing.errors import PdfTimeoutError, PdfTooComplexError, SigningError
from signing.sign import SignedPdf, SigningServices, SignRequest
from signing.worker import (  # noqa: F401  (re-exported: the pool's public names)
    ALLOWED_ROLES,
    MAX_VERIFIERS,
    RoleNotAllowed,
    check_role,
    policy_key,
)

log = logging.getLogger(__name__)

Lane = Literal["intake", "api"]
LANES: tuple[Lane, ...] = ("intake", "api")

#: Longest a worker may take to start (imports, keys, font) before it counts as dead.
START_TIMEOUT = 120.0

#: Defaults of the limits (the gateway passes its settings).
DEFAULT_MEMORY_MB = 1536
DEFAULT_JOB_TIMEOUT = 60.0


class PoolOverloaded(SigningError):
    """Too many signing/verification jobs are waiting; try again later."""

    code = "POOL_OVERLOADED"


class PoolClosed(SigningError):
    code = "POOL_CLOSED"


class PoolUnavailable(SigningError):
    """No worker could be started (spawn failed, out of processes or file descriptors, a start
    that never became ready): the gateway's fault, never the document's. Callers answer "try
    again later" (HTTP 503; intake lets the axis offer the package again)."""

    code = "POOL_UNAVAILABLE"


class WorkerCrashed(BrokenProcessPool):
    """A worker process died while running the job. The job is not run again (a PDF that kills
    its worker would kill the next one too); the pool has started a new worker.

    A :class:`~concurrent.futures.process.BrokenProcessPool` (not a ``SigningError``), so that
    callers that answer a broken pool with "busy, retry" keep doing so.
    """

    code = "POOL_WORKER_CRASHED"


class _Worker:
    """One worker process and the pipe to it; started on first use (in a helper thread)."""

    def __init__(self, pool: SigningPool, slot: int) -> None:
        self.pool = pool
        self.slot = slot
        self.process: multiprocessing.process.BaseProcess | None = None
        self.conn = None
        self.lane: Lane | None = None  # the lane of the job it runs, None when idle
        self.busy_since: float | None = None  # monotonic time its current job was sent
        self._lock = threading.Lock()

    def _start(self) -> None:
        parent, child = self.pool._mp_context.Pipe(duplex=True)
        process = self.pool._mp_context.Process(
            target=_w.serve, args=(child, self.pool._initargs, self.pool.memory_bytes),
            name=f"signing-worker-{self.slot}", daemon=True)
        process.start()
        child.close()
        self.process, self.conn = process, parent

    def ensure_started(self) -> None:
        """Start the process if it is not running and wait until it is ready for jobs (its
        imports, keys and font: seconds on a busy machine, not counted in any job's limit)."""
        with self._lock:
            if self.process is not None and self.process.is_alive():
                return
            self._discard()
            try:
                self._start()
                conn = self.conn
                if not conn.poll(START_TIMEOUT) or conn.recv() != _w.READY:
                    raise _Died(None)
            except (EOFError, OSError) as exc:
                raise _Died(self.process.exitcode if self.process else None) from exc

    def exchange(self, job: tuple) -> tuple:
        """Send one job and wait for its answer (blocking: runs in a helper thread)."""
        conn = self.conn
        if conn is None:
            raise _Died(None)
        started = False
        try:
            conn.send(job)
            started = conn.recv() == _w.STARTED
            if not started:
                raise EOFError("no start acknowledgement")
            return conn.recv()
        except (EOFError, OSError) as exc:
            process = self.process
            if process is not None:
                process.join(2)
            exitcode = process.exitcode if process is not None else None
            raise (_Died(exitcode) if started else _NotStarted(exitcode)) from exc

    def _discard(self) -> None:
        conn, process = self.conn, self.process
        self.conn = self.process = None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()
        if process is not None:
            if process.is_alive():
                process.kill()
            process.join(5)
            with contextlib.suppress(ValueError):
                process.close()

    def kill(self) -> None:
        """Kill the process now (its helper thread sees EOF and returns)."""
        process = self.process
        if process is not None and process.is_alive():
            with contextlib.suppress(OSError):
                process.kill()

    def discard(self) -> None:
        with self._lock:
            self._discard()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


class _Died(Exception):
    """The worker's pipe closed during a job: the process is gone (``args[0]``: its exit
    status, when known)."""

    @property
    def out_of_memory(self) -> bool:
        return bool(self.args) and self.args[0] == _w.EXIT_OUT_OF_MEMORY


class _NotStarted(_Died):
    """The worker was gone before it took the job (killed while idle): the job never ran and
    may go to a fresh worker."""


def _fail_closed(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_exception(PoolClosed("signing pool is closed"))


def _call_on_its_loop(future: asyncio.Future, fn, *args) -> None:
    """``fn(*args)`` on ``future``'s event loop (``close()`` may run in another thread)."""
    loop = future.get_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        fn(*args)
    elif not loop.is_closed():
        loop.call_soon_threadsafe(fn, *args)


def _retrieve(job: asyncio.Future) -> None:
    """Mark the outcome of a job whose caller gave up as seen (no "never retrieved" noise)."""
    if not job.cancelled():
        job.exception()


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
        memory_mb: int | None = DEFAULT_MEMORY_MB,
        job_timeout: float = DEFAULT_JOB_TIMEOUT,
        reserved_for_intake: int = 0,
    ):
        self.max_workers = max_workers
        self.max_pending = max_pending if max_pending is not None else 4 * max_workers
        self.memory_bytes = memory_mb * 1024 * 1024 if memory_mb else None
        self.job_timeout = job_timeout
        #: API jobs may occupy at most this many workers at once: all but the reserved ones,
        #: and at least one (with a single worker there is nothing to reserve; intake still
        #: goes first whenever it frees).
        self.api_capacity = max(1, max_workers - reserved_for_intake)
        self._pending = 0
        self._lane_pending: dict[Lane, int] = dict.fromkeys(LANES, 0)
        self._closed = False
        self._mp_context = multiprocessing.get_context(mp_context)
        self._initargs = (str(key_config_path) if key_config_path else None, services)
        self.restarts = 0  # workers replaced after a crash, a timeout or a memory overrun
        self.timeouts = 0
        self.start_failures = 0  # worker starts that failed in a row
        self._workers = [_Worker(self, i) for i in range(max_workers)]
        self._idle: list[_Worker] = list(reversed(self._workers))
        self._waiting: dict[Lane, collections.deque[asyncio.Future]] = {
            lane: collections.deque() for lane in LANES}
        # one helper thread per worker, and as many again for killed workers' threads unwinding
        self._threads = ThreadPoolExecutor(max_workers=2 * max_workers,
                                           thread_name_prefix="signing-pool")

    # -- capacity -------------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Jobs submitted and not finished yet."""
        return self._pending

    @property
    def busy(self) -> int:
        """Workers running a job now."""
        return self.max_workers - len(self._idle)

    def queued(self, lane: Lane | None = None) -> int:
        """Jobs waiting for a worker (in ``lane``, or in all lanes)."""
        lanes = (lane,) if lane else LANES
        return sum(len(self._waiting[name]) for name in lanes)

    def _api_running(self) -> int:
        return sum(1 for w in self._workers if w.lane == "api")

    def _may_take(self, lane: Lane) -> bool:
        return bool(self._idle) and (lane == "intake" or self._api_running() < self.api_capacity)

    async def _acquire(self, lane: Lane) -> _Worker:
        if not self._waiting["intake"] and (lane == "intake" or not self._waiting["api"]) \
                and self._may_take(lane):
            worker = self._idle.pop()
            worker.lane = lane
            return worker
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[lane].append(waiter)
        try:
            worker = await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._release(waiter.result())  # handed a worker just as we were cancelled
            with contextlib.suppress(ValueError):
                self._waiting[lane].remove(waiter)
            raise
        worker.lane = lane
        return worker

    def _release(self, worker: _Worker) -> None:
        worker.lane = None
        worker.busy_since = None
        self._idle.append(worker)
        self._dispatch()

    def _dispatch(self) -> None:
        """Hand free workers to waiting jobs: intake first; API only within its capacity."""
        for lane in LANES:
            queue = self._waiting[lane]
            while queue and self._may_take(lane):
                waiter = queue.popleft()
                if waiter.done():
                    continue
                worker = self._idle.pop()
                worker.lane = lane  # counted before the waiter's task runs
                waiter.set_result(worker)

    # -- running jobs ---------------------------------------------------------------------------
    async def _submit(self, fn, *args, lane: Lane = "api", limit: float | None = None):
        if self._closed:
            raise PoolClosed("signing pool is closed")
        if lane not in LANES:
            raise ValueError(f"unknown lane {lane!r}")
        if self._lane_pending[lane] >= self.max_pending:
            raise PoolOverloaded(f"signing pool busy: {self._lane_pending[lane]} {lane} jobs"
                                 f" pending (limit {self.max_pending})")
        self._pending += 1
        self._lane_pending[lane] += 1
        try:
            worker = await self._acquire(lane)
        except BaseException:
            self._pending -= 1
            self._lane_pending[lane] -= 1
            raise
        # a caller that gives up (cancelled) leaves the job to finish within its limit: the
        # worker is released only when its pipe is free again
        job = asyncio.ensure_future(self._run_and_release(worker, lane, fn, args,
                                                          limit or self.job_timeout))
        job.add_done_callback(_retrieve)
        return await asyncio.shield(job)

    async def _run_and_release(self, worker: _Worker, lane: Lane, fn, args, limit: float):
        try:
            return await self._run(worker, fn, args, limit)
        finally:
            self._release(worker)
            self._pending -= 1
            self._lane_pending[lane] -= 1

    async def _in_thread(self, fn, *args):
        """``fn(*args)`` in a helper thread; a pool closed meanwhile is :class:`PoolClosed`."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._threads, fn, *args)
        except RuntimeError:  # the helper threads were shut down by close()
            raise PoolClosed("signing pool is closed") from None

    async def _run(self, worker: _Worker, fn, args, limit: float):
        if self._closed:
            raise PoolClosed("signing pool is closed")
        for attempt in (1, 2):
            await self._start(worker)
            try:
                return await self._exchange(worker, fn, args, limit)
            except _NotStarted:
                # the process was gone before it took the job (killed while idle): the job never
                # ran, so it may go to a fresh worker — once
                if self._closed:
                    raise PoolClosed("signing pool is closed") from None
                await self._replace(worker, "worker found dead before its job")
                if attempt == 2:
                    raise PoolUnavailable("signing workers die before taking jobs") from None
        raise AssertionError("unreachable")

    async def _start(self, worker: _Worker) -> None:
        process = worker.process
        if process is not None and process.is_alive():  # the usual case: no thread hop
            return
        try:
            await self._in_thread(worker.ensure_started)
        except _Died:
            if self._closed:
                raise PoolClosed("signing pool is closed") from None
            self.start_failures += 1
            await self._replace(worker, "worker did not start")
            raise PoolUnavailable("a signing worker could not be started") from None
        self.start_failures = 0

    async def _exchange(self, worker: _Worker, fn, args, limit: float):
        call = asyncio.ensure_future(self._in_thread(worker.exchange, (fn, args)))
        worker.busy_since = time.monotonic()
        try:
            answer = await asyncio.wait_for(asyncio.shield(call), limit)
        except TimeoutError:
            self.timeouts += 1
            worker.kill()
            with contextlib.suppress(_Died, Exception):
                await call  # the helper thread returns once the process is gone
            await self._replace(worker, f"job {fn.__name__} over its {limit:g} s limit")
            raise PdfTimeoutError(
                f"the PDF took longer than {limit:g} s to process",
                detail={"limit_seconds": limit}) from None
        except _NotStarted:
            raise
        except _Died as died:
            if self._closed:
                raise PoolClosed("signing pool is closed") from None
            await self._replace(worker, f"worker died running {fn.__name__}")
            if died.out_of_memory:
                raise PdfTooComplexError(
                    "the PDF needs more memory than a job may use") from None
            raise WorkerCrashed(
                f"a worker process died running {fn.__name__} (not retried)") from None
        finally:
            worker.busy_since = None
        if answer[0] == "raised":
            raise answer[1]
        if answer[0] == "error":
            if answer[3] == "PDF_TOO_COMPLEX":  # the worker exits after a MemoryError
                await self._replace(worker, "job over its memory limit", kill=False)
            _w._raise_portable(answer)
        return answer[1]

    async def _replace(self, worker: _Worker, why: str, *, kill: bool = True) -> None:
        """Kill ``worker``'s process (if asked) and wait until it is gone and its pipe closed,
        before the worker slot is released: the next job starts a fresh process, which a late
        clean-up could otherwise kill."""
        self.restarts += 1
        log.error("signing pool worker replaced", extra={
            "reason": why, "pid": worker.pid, "restart": self.restarts})
        if kill:
            worker.kill()
        try:
            await self._in_thread(worker.discard)
        except PoolClosed:
            worker.kill()

    def _discard_later(self, worker: _Worker) -> None:
        try:
            self._threads.submit(worker.discard)
        except RuntimeError:  # closed: its threads are gone
            worker.kill()

    async def sign(self, pdf: bytes, request: SignRequest, alias: str, *,
                   lane: Lane = "api") -> SignedPdf:
        """Sign with the key configured under ``alias`` in a worker process."""
        return _w._raise_portable(await self._submit(_w._worker_sign, pdf, request, alias,
                                                     lane=lane))

    async def verify(self, pdf: bytes, policy=None, *, lane: Lane = "api"):
        """``signing.verify.verify_pdf(pdf, policy)`` in a worker process (policy without a
        live aiohttp session: workers create their own when online)."""
        return _w._raise_portable(await self._submit(
            _w._worker_verify, pdf, _w._policy_to_wire(policy), lane=lane))

    async def worker_pid(self) -> int:
        """PID of the worker process that ran this call (diagnostics, tests)."""
        return await self._submit(_w._worker_pid)

    async def worker_stats(self) -> dict:
        """Of the worker that ran this call: pid, cached verifiers, verifier cache hits/misses."""
        return await self._submit(_w._worker_stats)

    async def call(self, fn, *args, lane: Lane = "api", limit: float | None = None) -> Any:
        """Run a module-level function in a worker, under the pool's limits (diagnostics and
        tests, e.g. a function that kills its worker or never returns)."""
        return await self._submit(fn, *args, lane=lane, limit=limit)

    def health(self) -> dict[str, Any]:
        """For readiness and metrics: ``problem`` is None when the pool can take work, else
        why not (closed; workers that cannot start; a job past its limit that was not
        stopped — which the limits make a bug, not a load)."""
        now = time.monotonic()
        overdue = [w for w in self._workers if w.busy_since is not None
                   and now - w.busy_since > self.job_timeout + 30]
        problem = ("closed" if self._closed
                   else "workers cannot start" if self.start_failures
                   else f"{len(overdue)} worker(s) stuck past the job limit" if overdue
                   else None)
        return {"workers": self.max_workers, "busy": self.busy, "queued": self.queued(),
                "restarts": self.restarts, "timeouts": self.timeouts, "problem": problem}

    def worker_pids(self) -> list[int]:
        """PIDs of the worker processes running now."""
        return [w.pid for w in self._workers if w.pid is not None and w.process.is_alive()]

    def close(self, wait: bool = True) -> None:
        """Stop taking jobs, fail waiting ones, end every worker (busy ones are killed).
        Closing twice does nothing more."""
        if self._closed:
            return
        self._closed = True
        for lane in LANES:
            while self._waiting[lane]:
                waiter = self._waiting[lane].popleft()
                _call_on_its_loop(waiter, _fail_closed, waiter)
        for worker in self._workers:
            if worker.lane is not None:
                worker.kill()
            elif worker.conn is not None:
                with contextlib.suppress(OSError):
                    worker.conn.send(None)
        if wait:
            for worker in self._workers:
                worker.discard()
        else:
            for worker in self._workers:
                self._discard_later(worker)
        self._threads.shutdown(wait=wait, cancel_futures=False)

    async def __aenter__(self) -> SigningPool:
        return self

    async def __aexit__(self, *exc) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.close)
