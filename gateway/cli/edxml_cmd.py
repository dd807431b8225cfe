"""``edoc-gateway edxml``: parse, validate and build edXML messages (QCVN 102:2016)."""

from __future__ import annotations

import json
import mimetypes
import sys
import uuid
from pathlib import Path

from gateway.cli import CliError
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
        print(json.dumps(to_json(msg), ensure_ascii=False, indent=2))
    else:
        _print_summary(msg)
    return 0


def _print_summary(msg) -> None:
    summary = to_json(msg)
    print(f"message_type: {msg.message_type}")
    print(f"from: {msg.from_organ.organ_id} {msg.from_organ.organ_name or ''}".rstrip())
    if isinstance(msg, EdocMessage):
        for organ in msg.to_organs:
            print(f"to: {organ.organ_id} {organ.organ_name or ''}".rstrip())
        print(f"document_id: {msg.document_id}")
        print(f"code: {msg.code}")
        print(f"promulgation: {msg.promulgation_info.place} "
              f"{summary['promulgation_info']['promulgation_date']}")
        print(f"type: {msg.document_type.type_name}")
        print(f"subject: {msg.subject}")
        if msg.bussiness is not None:
            print(f"bussiness: {msg.bussiness.bussiness_doc_type.name.lower()} "
                  f"{msg.bussiness.document_id or ''}".rstrip())
        for att in summary["attachments"]:
            print(f"attachment: {att['name']} {att['content_type']} {att['size']} bytes "
                  f"sha256={att['sha256']}")
    else:
        print(f"response_for: {msg.response_for.document_id}")
        meaning = summary.get("status_meaning_en")
        print(f"status: {summary['status_code']}" + (f" ({meaning})" if meaning else ""))
        print(f"description: {msg.description}")
        print(f"timestamp: {summary['timestamp']}")
    for trace in summary["trace_headers"]:
        print(f"trace: {trace['organ_id'] or '-'} {trace['timestamp']}")


def _build(args) -> int:
    try:
        meta = json.loads(_read(args.meta).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CliError(f"{args.meta}: not JSON: {exc}", 2) from None
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
    except (TypeError, ValueError) as exc:
        raise CliError(f"{args.meta}: invalid message: {exc}", 2) from None
    try:
        Path(args.output).write_bytes(out)
    except OSError as exc:
        raise CliError(f"cannot write {args.output}: {exc.strerror}", 2) from None
    print(f"wrote {args.output} ({len(out)} bytes, {len(attachments)} attachment(s))")
    return 0
