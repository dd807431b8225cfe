"""``edoc-gateway edxml``: parse, validate and build edXML messages (QCVN 102:2016).

Every field of a parsed message comes from outside: the summary and the JSON are printed with
control and bidi characters escaped (:mod:`gateway.cli._text`).
"""

from __future__ import annotations

import json
import mimetypes
import sys
import uuid
from pathlib import Path

from gateway.cli import CliError
from gateway.cli._text import json_text, safe
from gateway.edxml import (
    Attachment,
    EdocMessage,
    EdxmlError,
    build,
    from_json,
    parse,
    to_json,
    validate_xsd,
)


def register(subparsers) -> None:
    parser = subparsers.add_parser("edxml", help="parse, validate and build edXML messages")
    sub = parser.add_subparsers(dest="edxml_command", metavar="ACTION", required=True)

    p = sub.add_parser("parse", help="parse an .edxml file and print the message")
    p.add_argument("file", metavar="FILE", help=".edxml file ('-' for stdin)")
    p.add_argument("--json", action="store_true", help="print the message as JSON")
    p.add_argument("--xsd", action="store_true", help="also validate against schemas/edxml")
    p.set_defaults(func=_parse)

    b = sub.add_parser("build", help="build an .edxml file from JSON metadata and files")
    b.add_argument("meta", metavar="META.json",
                   help="message as JSON, the shape printed by 'edxml parse --json'")
    b.add_argument("attachments", metavar="ATTACHMENT", nargs="*", help="files to attach")
    b.add_argument("-o", "--output", required=True, metavar="OUT.edxml")
    b.set_defaults(func=_build)


def _read(path: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}", 2) from None


def _parse(args) -> int:
    data = _read(args.file)
    try:
        msg = parse(data)
        if args.xsd:
            validate_xsd(data)
    except EdxmlError as exc:
        raise CliError(str(exc), 2) from None
    if args.json:
        print(json_text(to_json(msg), indent=2))
    else:
        _print_summary(msg)
    return 0


def _print_summary(msg) -> None:
    for line in _summary(msg):
        print(safe(line))


def _summary(msg) -> list[str]:
    """The message as ``field: value`` lines (raw; the caller escapes them)."""
    summary = to_json(msg)
    lines = [f"message_type: {msg.message_type}"]
    lines.append(f"from: {msg.from_organ.organ_id} {msg.from_organ.organ_name or ''}".rstrip())
    if isinstance(msg, EdocMessage):
        for organ in msg.to_organs:
            lines.append(f"to: {organ.organ_id} {organ.organ_name or ''}".rstrip())
        lines.append(f"document_id: {msg.document_id}")
        lines.append(f"code: {msg.code}")
        lines.append(f"promulgation: {msg.promulgation_info.place} "
                     f"{summary['promulgation_info']['promulgation_date']}")
        lines.append(f"type: {msg.document_type.type_name}")
        lines.append(f"subject: {msg.subject}")
        if msg.bussiness is not None:
            lines.append(f"bussiness: {msg.bussiness.bussiness_doc_type.name.lower()} "
                         f"{msg.bussiness.document_id or ''}".rstrip())
        for att in summary["attachments"]:
            lines.append(f"attachment: {att['name']} {att['content_type']} {att['size']}"
                         f" bytes sha256={att['sha256']}")
    else:
        lines.append(f"response_for: {msg.response_for.document_id}")
        meaning = summary.get("status_meaning_en")
        lines.append(f"status: {summary['status_code']}" + (f" ({meaning})" if meaning else ""))
        lines.append(f"description: {msg.description}")
        lines.append(f"timestamp: {summary['timestamp']}")
    for trace in summary["trace_headers"]:
        lines.append(f"trace: {trace['organ_id'] or '-'} {trace['timestamp']}")
    return lines


def _build(args) -> int:
    try:
        meta = json.loads(_read(args.meta).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CliError(f"{args.meta}: not JSON: {exc}", 2) from None
    except RecursionError:
        raise CliError(f"{args.meta}: JSON nested too deeply", 2) from None
    if not isinstance(meta, dict):
        raise CliError(f"{args.meta}: expected a JSON object", 2)
    attachments = []
    for path in args.attachments:
        data = _read(path)
        name = Path(path).name
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        cid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"edxml:{name}:{len(attachments)}"))
        attachments.append(Attachment(cid, name, ctype, data))
    try:
        msg = from_json(meta, tuple(attachments))
        if attachments and not isinstance(msg, EdocMessage):
            raise CliError("attachments are only allowed on document (edoc) messages", 2)
        out = build(msg)
        parse(out)  # refuse to write what we would not accept
    except EdxmlError as exc:
        raise CliError(str(exc), 2) from None
    # from_json answers AttributeError for a nested object of the wrong type ("from_organ": 5)
    except (TypeError, ValueError, AttributeError) as exc:
        raise CliError(f"{args.meta}: invalid message: {exc}", 2) from None
    except RecursionError:
        raise CliError(f"{args.meta}: invalid message: nested too deeply", 2) from None
    try:
        Path(args.output).write_bytes(out)
    except OSError as exc:
        raise CliError(f"cannot write {args.output}: {exc.strerror}", 2) from None
    print(f"wrote {args.output} ({len(out)} bytes, {len(attachments)} attachment(s))")
    return 0
