"""Remember which delivery messages were already delivered, so none arrives twice.

The rule: the runner calls :meth:`DedupStore.remember` only after the eOffice accepted
a message and before it acks, and checks :meth:`DedupStore.seen` before delivering.
A redelivery (crash, lost ack, broker restart, duplicate publish) is then acked
without a second delivery. :class:`SqliteDedupStore` survives adapter restarts (WAL,
``synchronous=FULL``: a remembered id is on disk before the ack) and prunes entries
older than ``retention`` seconds, which must exceed the longest redelivery window.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Protocol


class DedupStore(Protocol):
    """``seen`` runs on the event loop, so it must answer at once (a lookup, no waiting on
    writers); ``remember`` must be durable when it returns and, when ``blocking`` (it waits
    for a disk), the runner calls it in a thread."""

    #: ``remember`` waits for I/O: call it off the event loop.
    blocking: bool

    def seen(self, message_id: str) -> bool: ...

    def remember(self, message_id: str) -> None: ...


class MemoryDedupStore:
    """In-process store for tests; forgets everything when the process ends."""

    blocking = False  # a set insertion: no thread hop

    def __init__(self) -> None:
        self._ids: set[str] = set()

    def seen(self, message_id: str) -> bool:
        return message_id in self._ids

    def remember(self, message_id: str) -> None:
        self._ids.add(message_id)

    def __len__(self) -> int:
        return len(self._ids)


class SqliteDedupStore:
    """Durable store in one SQLite file (stdlib ``sqlite3``, WAL journal)."""

    blocking = True  # remember() syncs to disk

    def __init__(self, path: str | Path, *, retention: float = 30 * 86400,
                 prune_every: int = 1000) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._retention = retention
        self._prune_every = prune_every
        self._writes = 0
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS delivered ("
            " message_id TEXT PRIMARY KEY, at REAL NOT NULL)")
        self._db.execute("CREATE INDEX IF NOT EXISTS delivered_at ON delivered(at)")
        # lookups on their own connection, without the writers' lock: in WAL mode a reader
        # never waits for a writer, so seen() can run on the event loop (one primary-key
        # lookup) while remember() syncs to disk in a thread
        self._reader = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.prune()

    def seen(self, message_id: str) -> bool:
        row = self._reader.execute(
            "SELECT 1 FROM delivered WHERE message_id = ?", (message_id,)).fetchone()
        return row is not None

    def remember(self, message_id: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO delivered (message_id, at) VALUES (?, ?)",
                (message_id, time.time()))
            self._writes += 1
            due = self._writes % self._prune_every == 0
        if due:
            self.prune()

    def prune(self) -> int:
        """Forget entries older than the retention; return how many were removed."""
        with self._lock:
            cur = self._db.execute("DELETE FROM delivered WHERE at < ?",
                                   (time.time() - self._retention,))
        return cur.rowcount

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM delivered").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._reader.close()
