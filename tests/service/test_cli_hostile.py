"""The command line under hostile arguments, files and database contents.

Every case runs ``python -m gateway`` as a real process and checks the contract of the CLI:
bad input is exit 2 with one line on stderr naming the argument or setting, never a traceback;
names, agency codes and errors from the database are printed with control and bidi characters
escaped; ``tokens create`` accepts only agencies and key aliases this gateway knows.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from gateway.api.auth import create_client
from gateway.edxml import build
from tests.conftest import AMQP_URL, SERVED
from tests.edxml.scenarios import new_document

#: Services nobody listens on: a command that reaches for them before checking its arguments
#: answers 3 (unreachable), not 2.
NOWHERE = {"EDOC_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nowhere",
           "EDOC_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/"}
#: Characters a terminal acts on or that reorder what it shows (ESC, C1 CSI, RLO, isolates).
HOSTILE = ("\x1b", "\x9b", "\u202e", "\u2066", "\u2028")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("EDOC_") or k.startswith("EDOC_TEST_")}
    env.update(NOWHERE)
    env.update(extra)
    return env


def _cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
         timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True,
                          text=True, timeout=timeout, env=env or _env(), cwd=cwd,
                          errors="surrogateescape")


async def _acli(*args: str, **kw) -> subprocess.CompletedProcess:
    return await asyncio.to_thread(_cli, *args, **kw)


def _one_line_error(proc: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    err = proc.stderr
    assert "Traceback" not in err, err
    assert proc.returncode == code, (proc.returncode, err)
    assert err.startswith("edoc-gateway: ") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err
    return err


def _clean(text: str) -> None:
    for ch in HOSTILE:
        assert ch not in text, repr(text)


@pytest.mark.parametrize(("argv", "names"), [
    (["ops", "deliveries", "--limit", "-1"], "--limit"),
    (["ops", "deliveries", "--limit", "0"], "--limit"),
    (["ops", "deliveries", "--limit", "99999999999999999999"], "--limit"),
    (["ops", "deliveries", "--agency", ""], "--agency"),
    (["ops", "replay", "not-a-uuid\x1b[2J"], "DELIVERY_ID"),
    (["tokens", "create", "--role", "eoffice", "--agency", ""], "--agency"),
    (["tokens", "create", "--role", "eoffice", "--agency", "  "], "--agency"),
    (["tokens", "create", "--role", "eoffice", "--agency", "H99\x1b[31m"], "--agency"),
    (["tokens", "create", "--role", "operator", "--name", "ops\nrole=admin"], "--name"),
    (["tokens", "create", "--role", "operator", "--name", "x\u202eevil"], "--name"),
    (["tokens", "create", "--role", "officer", "--key", ""], "--key"),
    (["serve", "--port", "70000"], "--port"),
    (["axis-sim", "--port", "70000", "--agency", "s:k:o:n"], "--port"),
    (["axis-sim", "--port", "0", "--max-skew", "nan", "--agency", "s:k:o:n"], "--max-skew"),
    (["adapter", "run", "--agency", "", "--kind", "folder", "--folder", "x"], "--agency"),
    (["adapter", "run", "--agency", "../../A", "--kind", "folder", "--folder", "x"], "--agency"),
    (["adapter", "run", "--agency", "A", "--kind", "folder", "--folder", "x",
      "--state-dir", "/dev/null/state"], "--state-dir"),
    (["adapter", "run", "--agency", "A", "--kind", "folder", "--folder", "x",
      "--prefetch", "70000"], "--prefetch"),
    (["adapter", "run", "--agency", "A", "--kind", "folder", "--folder", "x",
      "--timeout", "-1"], "--timeout"),
    (["sign", "in.pdf", "--key", "k", "--role", "agency", "--page", "-2", "-o", "o.pdf"],
     "--page"),
])
def test_bad_arguments_are_exit_2_and_one_line_naming_the_argument(argv, names, tmp_path):
    # 20 s: an accepted bad value starts a server (axis-sim, demo) that would never exit
    proc = _cli(*argv, cwd=tmp_path, timeout=20)
    err = _one_line_error(proc, 2, names)
    _clean(err)


async def test_tokens_create_refuses_unknown_agencies_and_key_aliases(db, database_url, tmp_path):
    keys = tmp_path / "keys.toml"
    keys.write_text('[keys.seal]\nrole = "agency"\npath = "seal.p12"\n', encoding="utf-8")
    env = _env(EDOC_DATABASE_URL=database_url, EDOC_SIGNING__KEYS_FILE=str(keys),
               EDOC_AGENCIES=json.dumps([{"code": SERVED[0]}]))
    await db.execute("INSERT INTO agencies (code, name) VALUES ('000.00.09.H99', 'directory')")

    unknown = await _acli("tokens", "create", "--role", "eoffice", "--agency", SERVED[0],
                          "--agency", "999.99.99.X99", env=env)
    _one_line_error(unknown, 2, "unknown agency", "'999.99.99.X99'")
    bad_key = await _acli("tokens", "create", "--role", "officer", "--key", "sea1", env=env)
    _one_line_error(bad_key, 2, "unknown key alias", "'sea1'", "EDOC_SIGNING__KEYS_FILE")
    no_keys = await _acli("tokens", "create", "--role", "officer", "--key", "seal",
                          env={**env, "EDOC_SIGNING__KEYS_FILE": ""})
    _one_line_error(no_keys, 2, "EDOC_SIGNING__KEYS_FILE")
    assert await db.fetchval("SELECT count(*) FROM api_clients") == 0

    served = await _acli("tokens", "create", "--role", "eoffice", "--agency", SERVED[0],
                         "--agency", "000.00.09.H99", env=env)
    assert served.returncode == 0, served.stderr
    officer = await _acli("tokens", "create", "--role", "officer", "--key", "seal", env=env)
    assert officer.returncode == 0, officer.stderr
    assert await db.fetchval("SELECT count(*) FROM api_clients") == 2


async def test_names_and_errors_from_the_database_are_printed_escaped(db, database_url):
    evil = "ops\x1b]0;owned\x07\nfake line \u202eredro\u2066x\u2069\x9b31m\u2028"
    async with db.transaction():
        await create_client(db, name=evil, role="operator")
    doc, delivery = uuid.uuid4(), uuid.uuid4()
    await db.execute("INSERT INTO documents (id, direction, dedup_key, state, correlation_id,"
                     " subject, code_number) VALUES ($1, 'inbound', $2, 'ROUTED', 'c', $3, $3)",
                     doc, str(doc), evil)
    await db.execute("INSERT INTO deliveries (id, document_id, agency_code, message_id, state,"
                     " last_error) VALUES ($1, $2, $3, $4, 'DEAD', $3)",
                     delivery, doc, "A\x1b[2J\u202e", uuid.uuid4())
    env = _env(EDOC_DATABASE_URL=database_url)

    listed = await _acli("tokens", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    _clean(listed.stdout)
    assert listed.stdout.count("\n") == 1 and "\\x1b]0;owned\\x07\\nfake line \\u202e" \
        in listed.stdout
    deliveries = await _acli("ops", "deliveries", env=env)
    assert deliveries.returncode == 0, deliveries.stderr
    _clean(deliveries.stdout)
    assert deliveries.stdout.count("\n") == 1 and "A\\x1b[2J\\u202e" in deliveries.stdout
    revoke = await _acli("tokens", "revoke", "x\x1b[2J", env=env)
    _clean(_one_line_error(revoke, 2, "x\\x1b[2J"))


def test_demo_refuses_a_negative_timeout_before_starting_anything(capsys):
    from gateway.cli import build_parser

    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["demo", "--timeout", "-5"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("edoc-gateway: ") and err.count("\n") == 1 and "--timeout" in err


def test_edxml_parse_escapes_text_from_the_document(tmp_path):
    doc = dataclasses.replace(new_document(), subject="Công văn \u202egnp.exe\x9b2J\u2028dòng")
    path = tmp_path / "evil.edxml"
    path.write_bytes(build(doc))
    summary = _cli("edxml", "parse", str(path))
    assert summary.returncode == 0, summary.stderr
    _clean(summary.stdout)
    assert "subject: Công văn \\u202egnp.exe\\x9b2J\\u2028dòng\n" in summary.stdout
    as_json = _cli("edxml", "parse", "--json", str(path))
    assert as_json.returncode == 0, as_json.stderr
    _clean(as_json.stdout)
    assert json.loads(as_json.stdout)["subject"] == doc.subject


def test_edxml_build_of_deeply_nested_json_is_a_one_line_error(tmp_path):
    meta = tmp_path / "deep.json"
    meta.write_text("[" * 100_000 + "]" * 100_000)
    proc = _cli("edxml", "build", str(meta), "-o", str(tmp_path / "o.edxml"))
    _one_line_error(proc, 2, "deep.json", "nested")
    nested_field = tmp_path / "field.json"
    nested_field.write_text('{"message_type": "edoc", "subject": ' + "[" * 900 + "]" * 900 + "}")
    proc = _cli("edxml", "build", str(nested_field), "-o", str(tmp_path / "o.edxml"))
    _one_line_error(proc, 2, "field.json")
    assert not (tmp_path / "o.edxml").exists()


def test_verify_escapes_hostile_file_names(tmp_path):
    proc = _cli("verify", "\x1b[31mred\u202e.pdf", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    _clean(proc.stdout)
    assert "\\x1b[31mred\\u202e.pdf: ERROR" in proc.stdout


def _certificate_pem() -> bytes:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test root")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize("connect", [False, True])
async def test_check_config_refuses_missing_or_unreadable_signing_files(
        connect, database_url, tmp_path):
    (tmp_path / "seal.p12").write_bytes(b"not checked here, only that it exists")
    (tmp_path / "roots").mkdir()
    (tmp_path / "roots" / "root.pem").write_bytes(_certificate_pem())
    (tmp_path / "garbage.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n")
    (tmp_path / "keys.toml").write_text('[keys.seal]\nrole = "agency"\npath = "seal.p12"\n')
    (tmp_path / "lost.toml").write_text('[keys.seal]\nrole = "agency"\npath = "lost.p12"\n')
    (tmp_path / "bad.toml").write_text("[keys.seal\n")
    good = {"EDOC_DATABASE_URL": database_url, "EDOC_AMQP_URL": AMQP_URL,
            "EDOC_SIGNING__KEYS_FILE": str(tmp_path / "keys.toml"),
            "EDOC_SIGNING__TRUST_BUNDLES": json.dumps([str(tmp_path / "roots" / "root.pem"),
                                                       str(tmp_path / "roots")])}
    argv = ["check-config", "--connect"] if connect else ["check-config"]

    ok = await _acli(*argv, env=_env(**good))
    assert ok.returncode == 0, ok.stderr
    bad = [
        ("EDOC_SIGNING__KEYS_FILE", str(tmp_path / "missing.toml")),
        ("EDOC_SIGNING__KEYS_FILE", str(tmp_path)),
        ("EDOC_SIGNING__KEYS_FILE", str(tmp_path / "bad.toml")),
        ("EDOC_SIGNING__KEYS_FILE", str(tmp_path / "lost.toml")),
        ("EDOC_SIGNING__TRUST_BUNDLES", json.dumps([str(tmp_path / "missing.pem")])),
        ("EDOC_SIGNING__TRUST_BUNDLES", json.dumps([str(tmp_path / "garbage.pem")])),
        ("EDOC_SIGNING__TRUST_BUNDLES", json.dumps([str(tmp_path / "roots" / "root.pem" / "x")])),
    ]
    for setting, value in bad:
        proc = await _acli(*argv, env=_env(**{**good, setting: value}))
        _one_line_error(proc, 2, setting)
        assert proc.stdout == "", (setting, value)


def test_an_unexpected_error_is_one_line_exit_1(monkeypatch, capsys):
    from gateway.cli import main, ops_cmd

    def boom(args):
        raise ZeroDivisionError("division by zero\x1b[2J")

    monkeypatch.setattr(ops_cmd, "_audit", boom)  # a bug in a command, not bad input
    monkeypatch.delenv("EDOC_DEBUG", raising=False)
    assert main(["ops", "audit"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ZeroDivisionError" in err and "\\x1b[2J" in err


def test_json_text_escapes_and_round_trips():
    from gateway.cli._text import json_text, safe

    value = {"a\u202e": ["\x7f\x85\x9b", "\U000e0041\u2028\udcff", "Công văn số 12/UBND"]}
    text = json_text(value, indent=2)
    assert json.loads(text) == value
    assert text.isascii() is False and "Công văn số 12/UBND" in text
    assert not any(ch in text for ch in "\u202e\x7f\x85\x9b\U000e0041\u2028\udcff")
    assert safe("Hà Nội\t\x1b\U000e0041") == "Hà Nội\\t\\x1b\\U000e0041"
