"""Pure parts of the SDK: message parsing, the ladder, dedup stores, attachment checks."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest

from adapters.contract import Delivery
from adapters.dedup import MemoryDedupStore, SqliteDedupStore
from adapters.errors import MessageFormatError, PermanentDeliveryError, TransientDeliveryError
from adapters.fetch import AttachmentFetcher, decode_inline
from adapters.ladder import DeadEnd, RetryStep, copy_headers, next_step, previous_attempts
from adapters.message import parse_delivery
from adapters.outcomes import make_outcome
from tests.adapters.helpers import delivery_message


def _body(**kw) -> bytes:
    return json.dumps(delivery_message(**kw)).encode()


def test_parse_valid_message_keeps_everything():
    msg = delivery_message(files={"a.pdf": b"x"}, status_url="http://gw/s", extra="kept")
    parsed = parse_delivery(json.dumps(msg).encode())
    assert parsed.message_id == msg["message_id"] and parsed.attachments[0].size == 1
    assert parsed.status_url == "http://gw/s" and parsed.metadata()["extra"] == "kept"


@pytest.mark.parametrize(("mutate", "needle"), [
    (lambda m: m.pop("delivery_id"), "delivery_id: required"),
    (lambda m: m.update(schema="edoc.delivery/2"), "schema"),
    (lambda m: m.update(message_id="not-a-uuid"), "message_id: not a uuid"),
    (lambda m: m.update(bussiness_doc_type=7), "bussiness_doc_type"),
    (lambda m: m.update(bussiness_doc_type=True), "bussiness_doc_type: wrong type"),
    (lambda m: m.update(signature={"verdict": "great"}), "signature.verdict"),
    (lambda m: m["attachments"][0].update(sha256="ABC"), "attachments[0].sha256"),
    (lambda m: m["attachments"][0].pop("url"), "attachments[0].url: required"),
    (lambda m: m.update(attachments={}), "attachments: wrong type"),
])
def test_parse_rejects_schema_violations(mutate, needle):
    msg = delivery_message(files={"a.pdf": b"x"})
    mutate(msg)
    with pytest.raises(MessageFormatError) as err:
        parse_delivery(json.dumps(msg).encode())
    assert needle in str(err.value) and err.value.code == "MESSAGE_INVALID"


@pytest.mark.parametrize("body", [b"", b"\xff\xfe", b"[1]", b"null", b"{"])
def test_parse_rejects_non_objects(body):
    with pytest.raises(MessageFormatError):
        parse_delivery(body)


def test_ladder():
    assert previous_attempts(None) == 0
    assert previous_attempts({"x-attempt": 2}) == 2
    assert previous_attempts({"x-attempt": b"3"}) == 3
    assert previous_attempts({"x-attempt": "junk"}) == 0
    assert next_step(1, (5, 30)) == RetryStep(attempt=1, step=0, delay=5.0)
    assert next_step(2, (5, 30)) == RetryStep(attempt=2, step=1, delay=30.0)
    assert next_step(3, (5, 30)) == DeadEnd(attempt=3)
    assert next_step(1, ()) == DeadEnd(attempt=1)
    headers = copy_headers({"x-death": [1], "x-delivery-id": "d"}, attempt=2,
                           error="e" * 900, code="C")
    assert "x-death" not in headers and headers["x-delivery-id"] == "d"
    assert headers["x-attempt"] == 2 and len(headers["x-last-error"]) == 500


def test_outcome_body_follows_the_schema():
    out = make_outcome("retrying", message_id="m", delivery_id="d", document_id="doc",
                       agency="A", attempt=1, adapter="webhook:A", delay=5, error="boom")
    body = json.loads(out.to_json())
    assert body["schema"] == "edoc.outcome/1" and body["outcome_id"] == out.outcome_id
    assert body["next_at"] > body["at"] and body["at"].endswith("Z")
    required = {"schema", "outcome_id", "delivery_id", "document_id", "agency", "outcome",
                "attempt", "at", "adapter"}
    assert required <= set(body)


def test_sqlite_dedup_is_durable_and_prunes(tmp_path: Path):
    path = tmp_path / "d.sqlite3"
    store = SqliteDedupStore(path, retention=3600)
    store.remember("a")
    store.remember("a")
    assert store.seen("a") and not store.seen("b") and len(store) == 1
    store._db.execute("UPDATE delivered SET at = ?", (time.time() - 7200,))
    store.remember("b")
    assert store.prune() == 1 and not store.seen("a") and store.seen("b")
    store.close()
    again = SqliteDedupStore(path, retention=3600)
    assert again.seen("b")
    again.close()
    memory = MemoryDedupStore()
    memory.remember("x")
    assert memory.seen("x") and not memory.seen("y")


def test_sqlite_dedup_lookup_never_waits_for_a_writer(tmp_path: Path):
    """seen() runs on the adapter's event loop: a writer in the middle of a transaction (as
    during a slow disk sync) must not hold it up, and committed ids show at once."""
    import threading

    store = SqliteDedupStore(tmp_path / "d.sqlite3", retention=3600)
    store.remember("done")
    writing, release, committed = threading.Event(), threading.Event(), threading.Event()

    def slow_writer() -> None:
        with store._lock:
            store._db.execute("BEGIN IMMEDIATE")
            store._db.execute("INSERT INTO delivered (message_id, at) VALUES ('late', 0)")
            writing.set()
            release.wait(10)  # a lookup that waited for this writer would wait out the 10 s
            store._db.execute("COMMIT")
            committed.set()

    thread = threading.Thread(target=slow_writer)
    thread.start()
    try:
        assert writing.wait(5)
        answers = (store.seen("done"), store.seen("late"))
        assert not committed.is_set()  # answered while the writer was still writing
    finally:
        release.set()
        thread.join()
    assert answers == (True, False)
    assert store.seen("late")
    store.close()


def test_inline_attachment_checks():
    msg = delivery_message(files={"a.pdf": b"hello"}, inline=True)
    att = parse_delivery(json.dumps(msg).encode()).attachments[0]
    assert decode_inline(att) == b"hello"
    msg["attachments"][0]["inline_base64"] = base64.b64encode(b"hellO").decode()
    bad = parse_delivery(json.dumps(msg).encode()).attachments[0]
    with pytest.raises(PermanentDeliveryError) as err:
        decode_inline(bad)
    assert err.value.code == "ATTACHMENT_INLINE_INVALID"
    msg["attachments"][0]["inline_base64"] = "%%%"
    with pytest.raises(PermanentDeliveryError):
        decode_inline(parse_delivery(json.dumps(msg).encode()).attachments[0])


async def test_fetch_without_fetcher_or_server_is_transient():
    import aiohttp

    delivery = Delivery.of(parse_delivery(_body(files={"a.pdf": b"x"},
                                                base_url="http://127.0.0.1:9/f")))
    with pytest.raises(TransientDeliveryError):
        await delivery.fetch_attachment(delivery.attachments[0])
    async with aiohttp.ClientSession() as session:
        fetcher = AttachmentFetcher(session, token="t", timeout=2)
        with pytest.raises(TransientDeliveryError) as err:
            await fetcher.fetch(delivery.attachments[0])
    assert err.value.code == "ATTACHMENT_FETCH_FAILED"
