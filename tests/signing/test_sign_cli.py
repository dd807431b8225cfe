"""``edoc-gateway sign``: key file by alias, role check, one-line errors."""

from __future__ import annotations

import io

from pyhanko.pdf_utils.reader import PdfFileReader

from gateway.cli import main


def _keys(tmp_path, test_pki):
    (tmp_path / "p.pass").write_bytes(test_pki.p12_passphrase + b"\n")
    cfg = tmp_path / "keys.toml"
    cfg.write_text(
        f'[keys.seal]\nrole = "agency"\nowner = "H01"\npath = "{test_pki.p12("seal")}"\n'
        'passphrase_file = "p.pass"\n',
        encoding="utf-8",
    )
    return cfg


def test_cli_signs_attachment(tmp_path, test_pki, plain_pdf, capsys, monkeypatch):
    src, out = tmp_path / "in.pdf", tmp_path / "out.pdf"
    src.write_bytes(plain_pdf)
    monkeypatch.setenv("EDOC_KEYS_FILE", str(_keys(tmp_path, test_pki)))
    rc = main(["sign", str(src), "--key", "seal", "--role", "attachment", "--number", "7/UBND",
               "-o", str(out)])  # fmt: skip
    assert rc == 0
    assert "field=AgencyAttachment" in capsys.readouterr().out
    sigs = PdfFileReader(io.BytesIO(out.read_bytes())).embedded_regular_signatures
    assert [s.field_name for s in sigs] == ["AgencyAttachment"]


def test_cli_refuses_wrong_role_and_missing_tsa(tmp_path, test_pki, plain_pdf, capsys):
    src = tmp_path / "in.pdf"
    src.write_bytes(plain_pdf)
    keys = str(_keys(tmp_path, test_pki))
    base = ["sign", str(src), "--keys", keys, "--key", "seal", "-o", str(tmp_path / "o.pdf")]
    assert main([*base, "--role", "competent_person"]) == 1
    assert "KEY_ROLE_MISMATCH" in capsys.readouterr().err
    assert main([*base, "--role", "agency", "--level", "B-LT"]) == 1
    assert "SIGN_NO_TSA" in capsys.readouterr().err
    assert not (tmp_path / "o.pdf").exists()


def test_cli_output_into_a_missing_folder_is_one_line(tmp_path, test_pki, plain_pdf, capsys):
    src = tmp_path / "in.pdf"
    src.write_bytes(plain_pdf)
    out = tmp_path / "no" / "such" / "out.pdf"
    rc = main(["sign", str(src), "--keys", str(_keys(tmp_path, test_pki)), "--key", "seal",
               "--role", "attachment", "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith(f"edoc-gateway: cannot write {out}") and err.count("\n") == 1
