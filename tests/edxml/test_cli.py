from __future__ import annotations

import hashlib
import json

from gateway.cli import main
from gateway.edxml import parse_edoc, to_json

from .scenarios import FIXTURES, new_document, pdf_bytes


def test_parse_json_prints_attachment_summaries(capsys):
    rc = main(["edxml", "parse", str(FIXTURES / "edoc_new_several_receivers.edxml"), "--json",
               "--xsd"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert out["document_id"] == new_document().document_id
    att = out["attachments"][0]
    assert att["size"] == len(new_document().attachments[0].data)
    assert att["sha256"] == hashlib.sha256(new_document().attachments[0].data).hexdigest()
    assert "data" not in att


def test_parse_bad_input_exits_2_with_code(tmp_path, capsys):
    bad = tmp_path / "bad.edxml"
    bad.write_bytes(b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><edXML/>')
    assert main(["edxml", "parse", str(bad)]) == 2
    assert "EDXML_DTD_FORBIDDEN" in capsys.readouterr().err


def test_build_from_json_and_files(tmp_path, capsys):
    meta = to_json(new_document())
    (tmp_path / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    pdf = tmp_path / "CongVan.pdf"
    pdf.write_bytes(pdf_bytes("cli"))
    out = tmp_path / "out.edxml"
    rc = main(["edxml", "build", str(tmp_path / "meta.json"), str(pdf), "-o", str(out)])
    assert rc == 0, capsys.readouterr().err
    doc = parse_edoc(out.read_bytes())
    assert doc.subject == new_document().subject
    assert [(a.name, a.content_type, a.data) for a in doc.attachments] == [
        ("CongVan.pdf", "application/pdf", pdf.read_bytes())]


def test_build_rejects_bad_metadata(tmp_path, capsys):
    (tmp_path / "meta.json").write_text('{"message_type": "edoc", "subject": "x"}')
    rc = main(["edxml", "build", str(tmp_path / "meta.json"), "-o", str(tmp_path / "o.edxml")])
    assert rc == 2
    assert "invalid message" in capsys.readouterr().err
    assert not (tmp_path / "o.edxml").exists()
