"""Structured JSON logs with a correlation id that follows a document.

The correlation id is carried in a context variable: set it with
:func:`correlation` when a document enters (axis intake, HTTP request, queue
message) and every log line written inside that context carries it. It travels
on in queue message headers (``x-correlation-id``) and HTTP headers
(``X-Correlation-Id``) so the adapter and eOffice side can log the same id.

Never pass document bodies, tokens, PINs or secrets as log fields.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
import uuid
from collections.abc import Iterator

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation_id", default=None
)

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def new_correlation_id() -> str:
    return uuid.uuid4().hex


@contextlib.contextmanager
def correlation(cid: str | None) -> Iterator[str]:
    """Run the block with ``cid`` (or a new id) as the current correlation id."""
    cid = cid or new_correlation_id()
    token = correlation_id.set(cid)
    try:
        yield cid
    finally:
        correlation_id.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, correlation_id and extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        cid = correlation_id.get()
        if cid:
            entry["correlation_id"] = cid
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def setup_logging(level: str = "INFO", stream=None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # pyHanko logs tracebacks for normal LTA validations (spec trap 6);
    # aiormq is chatty on reconnects.
    for noisy in ("pyhanko", "pyhanko_certvalidator", "aiormq", "aio_pika"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
