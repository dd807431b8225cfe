"""Hostile HTTP input: every bad request is a 4xx with a JSON error code, never a 500.

The matrix test sends a generated set of requests — every route of the application times a
list of hostile mutations of headers, query, body, content type and multipart framing — over
raw sockets (so that bytes no HTTP client would send reach the server) and asserts that no
answer is a 5xx (except 503 with ``Retry-After``) and that every 4xx carries
``{"error": {"code": ...}}``. The other tests pin one contract each (issue 11 items 2, 7, 14).

Real PostgreSQL, RabbitMQ, test PKI and signing pool processes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web

from gateway.api.auth import create_client
from signing.pool import SigningPool
from signing.testpki import build_test_pki
from signing.testpki.pdfs import make_pdf
from tests.conftest import SERVED, make_settings
from tests.service.signing_client import bearer, error_code, pdf_form
from tests.service.test_signing_api import _write_keys

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "edxml"
VERIFY_MAX = 256 * 1024


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return build_test_pki(tmp_path_factory.mktemp("hostile-pki"), arch="gov-rsa")


@pytest.fixture(scope="module")
def keys_file(pki, tmp_path_factory):
    return _write_keys(tmp_path_factory.mktemp("hostile-keys"), pki)


def _settings(database_url, bus_prefix, pki, keys_file, **signing):
    return make_settings(database_url, bus_prefix, signing={
        "keys_file": str(keys_file), "trust_bundles": [str(pki.trust_bundle_path)],
        "offline": True, "workers": 1, "api_verify_max_bytes": VERIFY_MAX,
        "api_verify_per_token": 1, **signing}, max_document_bytes=2 * 1024 * 1024)


@pytest.fixture
async def gw(database_url, bus_prefix, db, pki, keys_file):
    from gateway.app import Gateway

    # the matrix signs many times
    gateway = Gateway(_settings(database_url, bus_prefix, pki, keys_file, rate_per_token=0,
                                rate_per_key=0))
    await gateway.start()
    yield gateway
    await gateway.stop()


@pytest.fixture
async def client(gw, aiohttp_client):
    return await aiohttp_client(gw.web_app())


@pytest.fixture(scope="module")
def pdf() -> bytes:
    return make_pdf(1, "Cong van thu nghiem")


async def _auth(db, role: str, **kw) -> dict[str, str]:
    return await bearer(db, role, f"{role}-hostile", **kw)


_error = error_code


_form = pdf_form


async def _document(db) -> uuid.UUID:
    doc_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO documents (id, direction, dedup_key, edxml_document_id, sender_code, state,"
        " correlation_id, subject) VALUES ($1, 'inbound', $2, $2, $3, 'ROUTED', 'c', 'Cong van')",
        doc_id, f"inbound:{doc_id}", "000.00.00.G22")
    await db.execute(
        "INSERT INTO deliveries (id, document_id, agency_code, message_id) VALUES ($1, $2, $3, $4)",
        uuid.uuid4(), doc_id, SERVED[0], uuid.uuid4())
    return doc_id


# --- hostile PDFs ------------------------------------------------------------------------------


def _append_revision(pdf: bytes, catalog_extra: bytes) -> bytes:
    """``pdf`` plus an incremental update whose catalog carries ``catalog_extra`` inline."""
    start = pdf.rindex(b"startxref")
    prev = int(pdf[start + 9:].split()[0])
    trailer = pdf[pdf.rindex(b"trailer"):start]
    size = int(trailer.split(b"/Size")[1].split()[0])
    root = int(trailer.split(b"/Root")[1].split()[0])
    body = pdf if pdf.endswith(b"\n") else pdf + b"\n"
    pages = pdf.split(b"/Type /Catalog /Pages ")[1].split()[0]
    offset = len(body)
    obj = (b"%d 0 obj\n<< /Type /Catalog /Pages %s 0 R /EdocHostile " % (root, pages)
           + catalog_extra + b" >>\nendobj\n")
    xref_at = offset + len(obj)
    return (body + obj + b"xref\n0 1\n0000000000 65535 f \n%d 1\n%010d 00000 n \n" % (root, offset)
            + b"trailer\n<< /Size %d /Root %d 0 R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n"
            % (size, root, prev, xref_at))


def nested_arrays_pdf(depth: int = 100_000) -> bytes:
    return _append_revision(make_pdf(1, "nested"), b"[" * depth + b"]" * depth)


# --- raw HTTP ----------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


async def raw_request(port: int, method: str, target: bytes, headers: list[tuple[bytes, bytes]],
                      body: bytes | None) -> Reply:
    """One HTTP/1.1 request written byte for byte; the whole answer read until EOF."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1",
            b"Connection: close"]
    if body is not None:
        head.append(b"Content-Length: %d" % len(body))
    head += [name + b": " + value for name, value in headers]
    try:
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + (body or b""))
        await writer.drain()
    except ConnectionError:
        pass  # the server answered early and closed: read what it said
    data = await asyncio.wait_for(reader.read(), 120)
    writer.close()
    head_end = data.index(b"\r\n\r\n")
    lines = data[:head_end].decode("latin-1").split("\r\n")
    reply_headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        reply_headers[name.strip().lower()] = value.strip()
    payload = data[head_end + 4:]
    if reply_headers.get("transfer-encoding", "").lower() == "chunked":
        out, rest = bytearray(), payload
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            out += rest[:size]
            rest = rest[size + 2:]
        payload = bytes(out)
    return Reply(int(lines[0].split()[1]), reply_headers, payload)


# --- the matrix --------------------------------------------------------------------------------


@dataclass
class Probe:
    """A request, as the mutations change it: path values, headers, query, body."""

    method: str
    template: str
    path_values: dict[str, str]
    headers: dict[bytes, bytes] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    raw_query: bytes = b""
    body: bytes | None = None

    def target(self) -> bytes:
        path = self.template
        for name, value in self.path_values.items():
            path = path.replace("{" + name + "}", value)
        query = "&".join(f"{quote(k, safe='')}={quote(v, safe='%')}"
                         for k, v in self.query.items()).encode()
        if self.raw_query:
            query = query + b"&" + self.raw_query if query else self.raw_query
        return path.encode() + (b"?" + query if query else b"")


Mutation = Callable[[Probe], None]

BOUNDARY = b"hostileboundary"
QUERY_NAMES = ("before", "limit", "state", "direction", "agency", "key", "role", "level", "page",
               "box", "field", "etsi", "reason", "location", "number", "date", "signer_name",
               "position", "competence", "copy_form", "agency_name")
#: Query values (already percent-encoded where it matters).
QUERY_VALUES = ("%00", "a%00b", "%ED%A0%80", "%E2%80%AE", "%1B%5B31m", "9" * 5000, "-1", "1e999",
                "0,0,inf,inf", "1e300,1e300,1e301,1e301", "nan,nan,nan,nan",
                "0001-01-01T00:00:00%2B14:00", "9999-12-31T23:59:59-14:00", "x" * 3000)
TEXT_INJECTIONS = ("\x00", "\x1b[2J", "\u202e", "\u2066", "\x85", "\x07", "\ud800")


def _set_header(name: bytes, value: bytes) -> Mutation:
    def apply(p: Probe) -> None:
        p.headers[name] = value
    return apply


def _drop_header(name: bytes) -> Mutation:
    def apply(p: Probe) -> None:
        p.headers.pop(name, None)
    return apply


def _query(name: str, value: str) -> Mutation:
    def apply(p: Probe) -> None:
        p.query.pop(name, None)
        p.raw_query = f"{name}={value}".encode()
    return apply


def _body(content_type: bytes | None, body: bytes) -> Mutation:
    def apply(p: Probe) -> None:
        if content_type is None:
            p.headers.pop(b"Content-Type", None)
        else:
            p.headers[b"Content-Type"] = content_type
        p.body = body
    return apply


def _both(*steps: Mutation) -> Mutation:
    def apply(p: Probe) -> None:
        for step in steps:
            step(p)
    return apply


def _path(name: str, value: str) -> Mutation:
    def apply(p: Probe) -> None:
        if name in p.path_values:
            p.path_values[name] = value
    return apply


def _multipart(*parts: bytes, close: bool = True, boundary: bytes = BOUNDARY) -> bytes:
    out = b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts)
    return out + (b"--" + boundary + b"--\r\n" if close else b"")


def _part(name: bytes, value: bytes, extra: bytes = b"") -> bytes:
    return b'Content-Disposition: form-data; name="' + name + b'"\r\n' + extra + b"\r\n" + value


def mutations(pdf: bytes, signed: bytes) -> Iterator[tuple[str, Mutation]]:
    """Every hostile change the matrix applies to every route's baseline request."""
    mp = b"multipart/form-data; boundary=" + BOUNDARY
    # headers
    for label, value in (("utf8", "Bearer édoc_ü".encode()), ("latin1", b"Bearer \xff\xfe\x80"),
                         ("surrogate", b"Bearer \xed\xa0\x80"), ("scheme-only", b"Bearer"),
                         ("basic", b"Basic Zm9vOmJhcg=="), ("long", b"Bearer " + b"a" * 6000),
                         ("bidi", "Bearer edoc_\u202e".encode())):
        yield f"auth-{label}", _set_header(b"Authorization", value)
    yield "auth-none", _drop_header(b"Authorization")
    for label, value in (("latin1", b"\xff\xfe"), ("long", b"r" * 4000),
                         ("bidi", "\u202e".encode())):
        yield f"request-id-{label}", _set_header(b"X-Request-Id", value)
        yield f"correlation-id-{label}", _set_header(b"X-Correlation-Id", value)
    for label, value in (("gzip", b"gzip"), ("deflate", b"deflate"), ("bogus", b"x-bogus")):
        yield f"content-encoding-{label}", _set_header(b"Content-Encoding", value)
    # refused by aiohttp's HTTP parser before the application sees it (plain-text 400)
    yield "protocol-content-encoding-br", _set_header(b"Content-Encoding", b"br")
    for label, value in (("none", None), ("empty", b""), ("latin1", b"\xff\xfe/\x80"),
                         ("json-utf7", b"application/json; charset=utf-7"),
                         ("json-bogus", b"application/json; charset=x-bogus"),
                         ("pdf-bogus", b"application/pdf; charset=\xff"),
                         ("text-plain", b"text/plain"), ("html", b"text/html"),
                         ("multipart-no-boundary", b"multipart/form-data"),
                         ("multipart-empty-boundary", b"multipart/form-data; boundary="),
                         ("multipart-long-boundary",
                          b"multipart/form-data; boundary=" + b"b" * 300),
                         ("multipart-mixed", b"multipart/mixed; boundary=" + BOUNDARY),
                         ("form-urlencoded", b"application/x-www-form-urlencoded")):
        if value is None:
            yield f"content-type-{label}", _drop_header(b"Content-Type")
        else:
            yield f"content-type-{label}", _set_header(b"Content-Type", value)
    # query
    for name in QUERY_NAMES:
        for value in QUERY_VALUES:
            yield f"query-{name}={value[:24]}", _query(name, value)
    # path
    for label, value in (("nul", "%00"), ("bidi", "%E2%80%AE"), ("long", "a" * 3000),
                         ("dotdot", "..%2F..%2Fetc"), ("bad-utf8", "%FF%FE")):
        yield f"path-id-{label}", _path("id", value)
        yield f"path-aid-{label}", _path("aid", value)
    # JSON bodies
    js = b"application/json"
    for label, body in (
            ("deep-arrays", b"[" * 100_000 + b"]" * 100_000),
            ("deep-objects", b'{"a":' * 50_000 + b"1" + b"}" * 50_000),
            ("surrogate-description",
             b'{"agency": "%s", "status": "02", "description": "\\ud800"}' % SERVED[0].encode()),
            ("surrogate-staff",
             b'{"agency": "%s", "status": "03", "staff": {"name": "\\udfff"}}'
             % SERVED[0].encode()),
            ("surrogate-key", b'{"\\ud800": 1, "status": "03"}'),
            ("nul-description",
             b'{"agency": "%s", "status": "02", "description": "a\\u0000b"}' % SERVED[0].encode()),
            ("nul-agency", b'{"agency": "a\\u0000", "status": "03"}'),
            ("surrogate-agency", b'{"agency": "\\udc00", "status": "03"}'),
            ("huge-int", b'{"status": ' + b"9" * 50_000 + b"}"),
            ("huge-float", b'{"status": 1e999999}'),
            ("not-utf8", b'\xff\xfe{"status": "03"}'),
            ("array", b"[1, 2, 3]"), ("truncated", b'{"status": "0'),
            ("staff-nested", b'{"agency": "%s", "status": "03", "staff": {"a": {"b": 1}}}'
             % SERVED[0].encode()),
            ("status-list", b'{"agency": "%s", "status": ["03"]}' % SERVED[0].encode()),
            ("empty", b"")):
        yield f"json-{label}", _body(js, body)
    # multipart framing
    file_pdf = _part(b"file", pdf, b"Content-Type: application/pdf\r\n")
    file_doc = _part(b"file_doc", b"<edXML/>", b"Content-Type: application/xml\r\n")
    for label, ctype, body in (
            ("no-boundary", b"multipart/form-data", _multipart(file_pdf)),
            ("wrong-boundary", b"multipart/form-data; boundary=other", _multipart(file_pdf)),
            ("truncated", mp, _multipart(file_pdf, close=False)[:len(pdf) // 2]),
            ("truncated-headers", mp, b"--" + BOUNDARY + b"\r\nContent-Disposition: form-da"),
            ("no-final-boundary", mp, _multipart(file_pdf, close=False)),
            ("only-final", mp, b"--" + BOUNDARY + b"--\r\n"),
            ("garbage", mp, b"\x00\xff" * 64),
            ("no-disposition", mp, _multipart(b"Content-Type: application/pdf\r\n\r\n" + pdf)),
            ("bad-disposition", mp, _multipart(b"Content-Disposition: \xff\xfe;;;=\r\n\r\nx")),
            ("latin1-name", mp, _multipart(_part(b"\xff\xfe", b"x"), file_pdf)),
            ("surrogate-filename", mp, _multipart(
                b'Content-Disposition: form-data; name="file"; filename="\xed\xa0\x80.pdf"\r\n'
                b"\r\n" + pdf)),
            ("nested", mp, _multipart(
                b'Content-Disposition: form-data; name="file"\r\n'
                b"Content-Type: multipart/mixed; boundary=inner\r\n\r\n"
                b"--inner\r\nContent-Type: application/pdf\r\n\r\n" + pdf + b"\r\n--inner--")),
            ("nested-no-boundary", mp, _multipart(
                b'Content-Disposition: form-data; name="file"\r\n'
                b"Content-Type: multipart/mixed\r\n\r\nx")),
            ("two-files", mp, _multipart(file_pdf, file_pdf)),
            ("control-in-part-header", mp, _multipart(
                b'Content-Disposition: form-data; name="file"; filename="a\x1bb.pdf"\r\n'
                b"\r\n" + pdf)),
            ("part-gzip", mp, _multipart(_part(b"file", b"not gzip",
                                               b"Content-Encoding: gzip\r\n"))),
            ("part-base64", mp, _multipart(_part(b"file", b"!!!not base64!!!",
                                                 b"Content-Transfer-Encoding: base64\r\n"))),
            ("long-param", mp, _multipart(_part(b"reason", b"r" * 10_000), file_pdf)),
            ("param-not-utf8", mp, _multipart(_part(b"reason", b"\xff\xfe"), file_pdf)),
            ("param-surrogate", mp, _multipart(_part(b"reason", b"\xed\xa0\x80"), file_pdf)),
            ("file-doc-truncated", mp, _multipart(file_doc, close=False)[:40]),
            ("file-doc-empty", mp, _multipart(_part(b"file_doc", b""))),
            ("box-inf", mp, _multipart(_part(b"box", b"0,0,inf,inf"), file_pdf)),
            ("box-huge", mp, _multipart(_part(b"box", b"1e300,1e300,1e301,1e301"), file_pdf)),
            ("page-huge", mp, _multipart(_part(b"page", b"9" * 4000), file_pdf))):
        yield f"multipart-{label}", _body(ctype, body)
    for name in ("reason", "location", "date", "number", "signer_name", "agency_name", "key"):
        for text in TEXT_INJECTIONS:
            value = text.encode("utf-8", "surrogatepass")
            yield (f"multipart-{name}-{text.encode('unicode_escape').decode()}",
                   _body(mp, _multipart(_part(name.encode(), b"x" + value + b"y"), file_pdf)))
    # raw bodies
    for label, ctype, body in (
            ("pdf-nested-arrays", b"application/pdf", nested_arrays_pdf()),
            ("pdf-signed-again", b"application/pdf", signed),
            ("pdf-over-its-signature", b"application/pdf", signed + b"\n" * 3),
            ("pdf-truncated", b"application/pdf", pdf[: len(pdf) // 2]),
            ("pdf-header-only", b"application/pdf", b"%PDF-1.7\n"),
            ("pdf-huge-count", b"application/pdf",
             pdf.replace(b"/Count 1", b"/Count 999999999999999999999")),
            ("pdf-xref-far", b"application/pdf", pdf[: pdf.rindex(b"startxref")]
             + b"startxref\n99999999999999\n%%EOF\n"),
            ("pdf-empty", b"application/pdf", b""),
            ("xml-deep", b"application/xml", b"<a>" * 100_000 + b"</a>" * 100_000),
            ("xml-entities", b"application/xml",
             b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e "x"><!ENTITY f "&e;&e;&e;">]>'
             b"<a>&f;</a>"),
            ("xml-external", b"application/xml",
             b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
             b"<a>&x;</a>"),
            ("xml-utf16", b"text/xml", "<?xml version='1.0' encoding='utf-16'?><a/>"
             .encode("utf-16")),
            ("xml-fixture", b"application/xml", (FIXTURES / "edoc_reply.edxml").read_bytes()),
            ("octets", b"application/octet-stream", os.urandom(4096))):
        yield f"body-{label}", _body(ctype, body)
    yield "sign-into-filled-field", _both(_body(b"application/pdf", signed),
                                          _query("field", "AgencySeal"))


def baseline(method: str, template: str, doc_id: uuid.UUID, auth: bytes, pdf: bytes) -> Probe:
    """A reasonable request for the route, which the mutations then spoil."""
    probe = Probe(method, template, {"id": str(doc_id), "aid": str(uuid.uuid4())},
                  headers={b"Authorization": auth})
    if template == "/v1/sign":
        probe.headers[b"Content-Type"] = b"application/pdf"
        probe.query = {"key": "seal", "role": "agency", "reason": "Ban hanh"}
        probe.body = pdf
    elif template == "/v1/verify":
        probe.headers[b"Content-Type"] = b"application/pdf"
        probe.body = pdf
    elif template == "/v1/axis/inbox":
        probe.headers[b"Content-Type"] = b"application/xml"
        probe.body = (FIXTURES / "edoc_reply.edxml").read_bytes()
    elif template.endswith("/status"):
        probe.headers[b"Content-Type"] = b"application/json"
        probe.body = json.dumps({"agency": SERVED[0], "status": "03"}).encode()
    elif template == "/v1/documents":
        probe.query = {"limit": "5"}
    elif template.endswith(("/revoke", "/take-back")):
        probe.headers[b"Content-Type"] = b"application/json"
        probe.body = json.dumps({"reason": "Gửi nhầm", "staff": {"staff": "B"}}).encode()
    elif template.endswith("/update"):
        probe.headers[b"Content-Type"] = b"multipart/form-data; boundary=" + BOUNDARY
        probe.body = _multipart(_part(b"metadata", json.dumps(
            {"reason": "Sửa", "receivers_added": [SERVED[1]]}).encode()),
            _part(b"file", pdf, b"Content-Type: application/pdf\r\n"))
    elif template in ("/v1/outbound", "/v1/outbound/{id}/replace"):
        meta = {"from": SERVED[0], "to": [SERVED[1]], "code_number": "1", "code_notation": "UB",
                "promulgation_place": "HN", "promulgation_date": "2024/03/01",
                "document_type": 1, "type_name": "Công văn", "subject": "V/v thử",
                "signer": {"full_name": "Nguyễn Văn A"}}
        if template.endswith("/replace"):
            meta["reason"] = "Thay thế"
        probe.headers[b"Content-Type"] = b"multipart/form-data; boundary=" + BOUNDARY
        probe.body = _multipart(_part(b"metadata", json.dumps(meta).encode()),
                                _part(b"file", pdf, b"Content-Type: application/pdf\r\n"))
    return probe


def judge(reply: Reply, protocol: bool = False) -> str | None:
    """What is wrong with an answer to a hostile request (None: nothing). ``protocol``: the
    HTTP parser refuses the request before the application runs, in plain text."""
    if reply.status >= 500:
        if reply.status == 503 and reply.headers.get("retry-after", "").isdigit():
            return None
        return f"{reply.status} {reply.body[:160]!r}"
    if reply.status >= 400 and not protocol:
        try:
            code = json.loads(reply.body)["error"]["code"]
        except (ValueError, KeyError, TypeError):
            return f"{reply.status} without a JSON error: {reply.body[:160]!r}"
        if not (isinstance(code, str) and code):
            return f"{reply.status} with error code {code!r}"
    if b"Traceback" in reply.body:
        return f"{reply.status} leaks a traceback"
    return None


async def test_matrix_of_hostile_requests_never_gives_a_5xx(gw, client, db, pdf, pki):
    from signing.testpki.samples import sign_sample

    admin = (await _auth(db, "admin"))["Authorization"].encode()
    doc_id = await _document(db)
    signed = await sign_sample(pdf, pki, "seal", field_name="AgencySeal")
    routes = sorted({(r.method, r.resource.canonical) for r in client.app.router.routes()
                     if r.method not in ("HEAD", "*") and r.resource is not None})
    assert ("POST", "/v1/sign") in routes and ("GET", "/v1/documents/{id}") in routes
    port = client.server.port
    failures: list[str] = []
    sent = 0
    for name, mutate in mutations(pdf, signed):
        for method, template in routes:
            probe = baseline(method, template, doc_id, admin, pdf)
            mutate(probe)
            reply = await raw_request(port, probe.method, probe.target(),
                                      list(probe.headers.items()), probe.body)
            sent += 1
            if (problem := judge(reply, name.startswith("protocol-"))) is not None:
                failures.append(f"{method} {template} [{name}]: {problem}")
    assert sent > 2000
    assert failures == [], f"{len(failures)} of {sent} answers wrong:\n" + "\n".join(failures)


# --- item 7, one contract at a time ------------------------------------------------------------


async def test_non_ascii_authorization_is_401_without_a_lookup(client):
    reply = await raw_request(client.server.port, "GET", b"/v1/documents",
                              [(b"Authorization", b"Bearer \xff\xfe\x80")], None)
    assert reply.status == 401, reply
    assert json.loads(reply.body)["error"]["code"] == "AUTH_INVALID"
    assert reply.headers["www-authenticate"].startswith("Bearer")


async def test_query_values_postgresql_cannot_take_are_400(client, db):
    operator = await _auth(db, "operator")
    for query in ({"before": "0001-01-01T00:00:00+14:00"}, {"before": "9999-12-31T23:00-14:00"},
                  {"state": "ROUTED\x00"}, {"direction": "in\x00"}, {"limit": "9" * 5000},
                  {"limit": "\x00"}):
        resp = await client.get("/v1/documents", headers=operator, params=query)
        assert resp.status == 400, (query, await resp.text())
        assert await _error(resp) == "INVALID_QUERY"
    resp = await client.get("/v1/deliveries", headers=operator, params={"agency": "x\x00"})
    assert resp.status == 400 and await _error(resp) == "INVALID_QUERY"
    resp = await client.get("/v1/documents", headers=operator,
                            params={"before": "2030-01-01T00:00:00+07:00", "state": "ROUTED"})
    assert resp.status == 200, await resp.text()


async def test_broken_multipart_is_400_on_every_upload_route(client, db, pdf):
    admin = await _auth(db, "admin")
    port = client.server.port
    auth = [(b"Authorization", admin["Authorization"].encode())]
    body = _multipart(_part(b"file", pdf), close=False)
    for route in (b"/v1/sign", b"/v1/verify", b"/v1/axis/inbox"):
        for ctype, data in ((b"multipart/form-data", body),
                            (b"multipart/form-data; boundary=" + BOUNDARY, body[:200]),
                            (b"multipart/form-data; boundary=" + BOUNDARY,
                             b"--" + BOUNDARY + b"\r\nContent-Disposition: form-da")):
            reply = await raw_request(port, "POST", route, [*auth, (b"Content-Type", ctype)],
                                      data)
            assert reply.status == 400, (route, ctype, reply)
            assert json.loads(reply.body)["error"]["code"] == "MULTIPART_INVALID"


async def test_json_too_deep_or_with_lone_surrogates_is_400(client, db):
    eoffice = await _auth(db, "eoffice", agencies=[SERVED[0]])
    doc_id = await _document(db)
    headers = {**eoffice, "Content-Type": "application/json"}
    url = f"/v1/documents/{doc_id}/status"
    # 40 KB, under the status body limit (64 KiB), far deeper than any parser should recurse
    resp = await client.post(url, headers=headers, data=b"[" * 20_000 + b"]" * 20_000)
    assert resp.status == 400 and await _error(resp) == "INVALID_JSON"
    for body in (b'{"status": "02", "description": "\\ud800 l\\u00fd do"}',
                 b'{"status": "03", "staff": {"name": "\\udfff"}}',
                 b'{"status": "02", "description": "a\\u0000b"}'):
        resp = await client.post(url, headers=headers, data=body)
        assert resp.status == 400, (body, await resp.text())
        assert await _error(resp) == "INVALID_JSON"
        assert (await resp.json())["error"]["details"]["path"]


async def test_box_must_be_finite_and_on_a_page(client, db, pdf):
    officer = await _auth(db, "officer", key_aliases=["officer-a"])
    for box in ("0,0,inf,inf", "1e300,1e300,1e301,1e301", "nan,0,1,1", "-inf,0,10,10"):
        resp = await client.post("/v1/sign", headers=officer, data=_form(
            pdf, key="officer-a", role="competent_person", box=box))
        assert resp.status == 400, (box, await resp.text())
        assert await _error(resp) == "INVALID_PARAMETER"
        assert (await resp.json())["error"]["details"]["parameter"] == "box"


async def test_deeply_nested_pdf_to_sign_is_422(client, db):
    officer = await _auth(db, "officer", key_aliases=["officer-a"])
    resp = await client.post("/v1/sign", headers=officer, data=_form(
        nested_arrays_pdf(), key="officer-a", role="competent_person"))
    assert resp.status == 422, await resp.text()
    assert await _error(resp) in ("PDF_TOO_COMPLEX", "PDF_UNREADABLE")


async def test_signing_into_an_already_signed_field_is_409(client, db, pdf):
    officer = await _auth(db, "officer", key_aliases=["officer-a"])
    resp = await client.post("/v1/sign", headers=officer, data=_form(
        pdf, key="officer-a", role="competent_person", field="Chu_ky"))
    assert resp.status == 200, await resp.text()
    signed = await resp.read()
    resp = await client.post("/v1/sign", headers=officer, data=_form(
        signed, key="officer-a", role="competent_person", field="Chu_ky"))
    assert resp.status == 409, await resp.text()
    body = await resp.json()
    assert body["error"]["code"] == "FIELD_ALREADY_SIGNED"
    assert body["error"]["details"]["field"] == "Chu_ky"


def _kill_worker() -> None:
    os._exit(3)


class CrashingPool(SigningPool):
    """A real pool whose every job kills the worker that runs it (retried once, as always)."""

    async def sign(self, pdf, request, alias, *, lane: str = "api"):
        return await self.call(_kill_worker)

    async def verify(self, pdf, policy=None, *, lane: str = "api"):
        return await self.call(_kill_worker)


async def test_crashed_or_closed_pool_is_503_with_retry_after_on_sign_and_verify(gw, client, db,
                                                                                  pdf):
    from gateway.api.signing import signing_backend

    admin = await _auth(db, "admin")
    backend = signing_backend(gw.services)
    judge_pool, sign_pool = gw.judge.pool, backend.pool
    crashing = CrashingPool(max_workers=1)
    try:
        gw.judge.pool = crashing
        object.__setattr__(backend, "pool", crashing)
        for route, data in (("/v1/sign", _form(pdf, key="seal", role="agency")),
                            ("/v1/verify", _form(pdf))):
            resp = await client.post(route, headers=admin, data=data)
            assert resp.status == 503, (route, await resp.text())
            assert await _error(resp) == "POOL_WORKER_CRASHED"
            assert int(resp.headers["Retry-After"]) >= 1
        crashing.close(wait=False)  # a pool shut down under the request: PoolClosed
        for route, data in (("/v1/sign", _form(pdf, key="seal", role="agency")),
                            ("/v1/verify", _form(pdf))):
            resp = await client.post(route, headers=admin, data=data)
            assert resp.status == 503, (route, await resp.text())
            assert await _error(resp) == "POOL_CLOSED"
            assert int(resp.headers["Retry-After"]) >= 1
    finally:
        gw.judge.pool = judge_pool
        object.__setattr__(backend, "pool", sign_pool)
        crashing.close(wait=False)


async def test_last_resort_handler_hides_the_traceback_and_logs_one_line(gw, aiohttp_client,
                                                                          caplog):
    app = gw.web_app()

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals /srv/gateway/db.py")

    app.router.add_get("/v1/broken-on-purpose", broken)
    client = await aiohttp_client(app)
    with caplog.at_level(logging.ERROR, logger="gateway.http"):
        resp = await client.get("/v1/broken-on-purpose", headers={"X-Request-Id": "req-42"})
    text = await resp.text()
    assert resp.status == 500
    assert json.loads(text)["error"] == {"code": "INTERNAL", "request_id": "req-42",
                                         "message": "internal error; see the gateway log"}
    assert "Traceback" not in text and "secret internals" not in text
    records = [r for r in caplog.records if r.name == "gateway.http" and r.levelno >= 40]
    assert len(records) == 1
    assert records[0].request_id == "req-42" and records[0].error == "RuntimeError"
    assert "\n" not in records[0].getMessage()


# --- item 14 -----------------------------------------------------------------------------------


async def test_inbox_takes_only_xml_or_multipart_file_doc(client, db):
    axis = await _auth(db, "axis")
    package = (FIXTURES / "edoc_reply.edxml").read_bytes()
    for ctype in ("text/plain", "text/html", "application/json", "image/png",
                  "application/x-www-form-urlencoded", "application/xmlx"):
        resp = await client.post("/v1/axis/inbox", data=package,
                                 headers={**axis, "Content-Type": ctype})
        assert resp.status == 415, (ctype, await resp.text())
        assert await _error(resp) == "UNSUPPORTED_MEDIA_TYPE"
    for ctype in ("application/xml", "text/xml; charset=utf-8", "application/octet-stream",
                  "application/edxml+xml", "application/vnd.edxml+xml"):
        resp = await client.post("/v1/axis/inbox", data=package,
                                 headers={**axis, "Content-Type": ctype})
        assert resp.status != 415, ctype  # judged by intake (not addressed to us here)
        assert resp.status < 500, (ctype, await resp.text())
    form = aiohttp.FormData()
    form.add_field("file_doc", package, filename="goi.edxml", content_type="application/xml")
    resp = await client.post("/v1/axis/inbox", data=form, headers=axis)
    assert resp.status != 415 and resp.status < 500, await resp.text()


@pytest.mark.parametrize("name", ["reason", "location", "date", "number", "signer_name",
                                  "position", "competence", "agency_name", "copy_form"])
async def test_sign_text_parameters_refuse_control_and_bidi_characters(client, db, pdf, name):
    admin = await _auth(db, "admin")
    for bad in TEXT_INJECTIONS:
        if bad == "\ud800":  # not encodable by the client: see the raw test below
            continue
        resp = await client.post("/v1/sign", headers=admin, data=_form(
            pdf, key="seal", role="agency", **{name: f"Ban{bad}hành"}))
        assert resp.status == 422, (name, bad, await resp.text())
        body = await resp.json()
        assert body["error"]["code"] == "PARAM_INVALID"
        assert body["error"]["details"]["parameter"] == name
        assert name in body["error"]["message"]


async def test_sign_text_parameter_with_a_lone_surrogate_is_refused(client, db, pdf):
    admin = await _auth(db, "admin")
    port = client.server.port
    body = _multipart(_part(b"key", b"seal"), _part(b"role", b"agency"),
                      _part(b"reason", "a\ud800b".encode("utf-8", "surrogatepass")),
                      _part(b"file", pdf))
    reply = await raw_request(port, "POST", b"/v1/sign", [
        (b"Authorization", admin["Authorization"].encode()),
        (b"Content-Type", b"multipart/form-data; boundary=" + BOUNDARY)], body)
    assert reply.status == 422, reply
    error = json.loads(reply.body)["error"]
    assert (error["code"], error["details"]["parameter"]) == ("PARAM_INVALID", "reason")


def _tamper(signed: bytes) -> bytes:
    data = bytearray(signed)
    data[data.index(b"page 1 of 1")] ^= 0x01
    return bytes(data)


async def test_signing_over_invalid_signatures_warns_and_may_refuse(
        gw, client, db, pdf, database_url, bus_prefix, pki, keys_file, aiohttp_client):
    from gateway.app import Gateway

    officer = await _auth(db, "officer", key_aliases=["officer-a", "seal"])
    resp = await client.post("/v1/sign", headers=officer, data=_form(
        pdf, key="officer-a", role="competent_person"))
    assert resp.status == 200, await resp.text()
    assert resp.headers["X-Existing-Signatures"] == "none"
    signed = await resp.read()

    resp = await client.post("/v1/sign", headers=officer, data=_form(
        signed, key="seal", role="agency"))
    assert resp.status == 200, await resp.text()
    assert resp.headers["X-Existing-Signatures"] == "intact"

    resp = await client.post("/v1/sign", headers=officer, data=_form(
        _tamper(signed), key="seal", role="agency"))
    assert resp.status == 200, await resp.text()
    assert resp.headers["X-Existing-Signatures"] == "invalid"

    strict = Gateway(_settings(database_url, bus_prefix, pki, keys_file,
                               refuse_invalid_existing=True))
    await strict.start()
    try:
        strict_client = await aiohttp_client(strict.web_app())
        resp = await strict_client.post("/v1/sign", headers=officer, data=_form(
            _tamper(signed), key="seal", role="agency"))
        assert resp.status == 422, await resp.text()
        assert await _error(resp) == "EXISTING_SIGNATURES_INVALID"
        resp = await strict_client.post("/v1/sign", headers=officer, data=_form(
            signed, key="seal", role="agency"))
        assert resp.status == 200, await resp.text()
        await strict_client.close()
    finally:
        await strict.stop()
    failed = await db.fetchval(
        "SELECT detail->>'error' FROM audit_log WHERE action = 'pdf.sign.failed'")
    assert failed == "EXISTING_SIGNATURES_INVALID"


# --- item 2 (API half): /v1/verify limits -----------------------------------------------------


async def test_verify_refuses_pdfs_over_its_own_limit(client, db):
    operator = await _auth(db, "operator")
    big = b"%PDF-1.7\n" + b"0" * VERIFY_MAX
    resp = await client.post("/v1/verify", data=big,
                             headers={**operator, "Content-Type": "application/pdf"})
    assert resp.status == 413 and await _error(resp) == "PDF_TOO_LARGE"
    resp = await client.post("/v1/verify", data=_form(big), headers=operator)
    assert resp.status == 413 and await _error(resp) == "PDF_TOO_LARGE"


async def test_verify_limit_is_checked_while_the_body_streams(client, db):
    operator = await _auth(db, "operator")
    never = asyncio.Event()

    async def endless():
        yield b"%PDF-1.7\n" + b"0" * (VERIFY_MAX + 1)
        await never.wait()  # the rest never comes: only an early answer ends the request
        yield b""

    resp = await asyncio.wait_for(client.post(
        "/v1/verify", data=endless(), headers={**operator, "Content-Type": "application/pdf"}),
        timeout=20)
    assert resp.status == 413 and await _error(resp) == "PDF_TOO_LARGE"
    resp.close()


async def test_verify_concurrency_per_token_is_429(gw, client, db, pdf):
    from gateway.api.signing import verify_limits

    created = await create_client(db, name="operator-busy", role="operator")
    operator = {"Authorization": f"Bearer {created.token}", "Content-Type": "application/pdf"}
    other = await _auth(db, "operator")
    release = asyncio.Event()

    async def slow():
        yield pdf[:100]
        await release.wait()
        yield pdf[100:]

    first = asyncio.create_task(client.post("/v1/verify", data=slow(), headers=operator))
    try:
        for _ in range(200):  # until the first request holds its slot (reading its body)
            if verify_limits(gw.services).running(created.id):
                break
            await asyncio.sleep(0.05)
        resp = await client.post("/v1/verify", data=pdf, headers=operator)
        assert resp.status == 429, await resp.text()
        assert await _error(resp) == "VERIFY_CONCURRENCY_LIMIT"
        assert int(resp.headers["Retry-After"]) >= 1
        resp = await client.post("/v1/verify", data=pdf,
                                 headers={**other, "Content-Type": "application/pdf"})
        assert resp.status == 200, await resp.text()
    finally:
        release.set()
    resp = await first
    assert resp.status == 200, await resp.text()
    resp = await client.post("/v1/verify", data=pdf, headers=operator)
    assert resp.status == 200, await resp.text()
    assert hashlib.sha256(pdf).hexdigest() == (await resp.json())["sha256"]
    assert verify_limits(gw.services).running(created.id) == 0
