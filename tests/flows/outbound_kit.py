"""What the outbound tests share: the sending gateway (it serves the city committee, whose
eOffice sends to the districts over the VDXP simulator), its keys (the competent person's
PKCS#12, the agency seal on SoftHSM), documents signed by the competent person, and the
multipart form of ``POST /v1/outbound``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp

from gateway.demo.exchange import CITY
from signing.testpki.pdfs import make_pdf
from tests.conftest import make_settings

SEAL_ALIAS = "seal-hsm"


def write_keys(folder: Path, pki, token=None) -> Path:
    """A key file: ``officer`` (PKCS#12, competent person) and, with a SoftHSM ``token``,
    the agency seal ``seal-hsm`` (PKCS#11)."""
    (folder / "p12.pass").write_bytes(pki.p12_passphrase + b"\n")
    text = (f'[keys.officer]\nrole = "competent_person"\nowner = "Nguyễn Văn A"\n'
            f'path = "{pki.p12("officer")}"\npassphrase_file = "p12.pass"\n\n')
    if token is not None:
        text += (f'[keys.{SEAL_ALIAS}]\nrole = "agency"\nowner = "{CITY.organ_id}"\n'
                 f'source = "pkcs11"\nmodule = "{token.module}"\n'
                 f'token_label = "{token.label}"\nkey_label = "seal"\ncert_label = "seal"\n'
                 f'pin_file = "{token.pin_file}"\n')
    path = folder / "keys.toml"
    path.write_text(text, encoding="utf-8")
    return path


def sender_settings(database_url: str, bus_prefix: str, pki, axis_url: str, keys: Path | None,
                    *, seal: bool = False, **extra: Any):
    """The gateway of the sending agency (the city), with one axis connection."""
    agency = {"code": CITY.organ_id, "name": CITY.name, "axis": "city"}
    if keys is not None:
        agency.update(seal_key=SEAL_ALIAS, seal=seal)
    data = {
        "axis": [{"name": "city", "endpoint": axis_url, "system_id": CITY.system_id,
                  "secret": CITY.secret, "organ_id": CITY.organ_id, "poll_interval": 0.2,
                  "timeout": 5}],
        "agencies": [agency],
        "signing": {"trust_bundles": [str(pki.trust_bundle_path)], "offline": True,
                    "workers": 2, "revocation_cache_dir": str(pki.crl_cache()),
                    "crl_refresh_interval": 0, "key_check_interval": 0, "rate_per_token": 0,
                    "rate_per_key": 0, **({"keys_file": str(keys)} if keys else {})},
        "http_port": 0,
    }
    data.update(extra)
    return make_settings(database_url, bus_prefix, **data)


def metadata(receivers: list[str], number: int, **extra: Any) -> dict[str, Any]:
    meta = {
        "from": CITY.organ_id, "to": receivers, "code_number": str(number),
        "code_notation": "UBND-VP", "promulgation_place": "Thành phố Thử Nghiệm",
        "promulgation_date": "2024/03/01", "document_type": 1, "type_name": "Công văn",
        "subject": f"V/v báo cáo số {number}", "priority": 0,
        "signer": {"full_name": "Nguyễn Văn A", "competence": "TM. ỦY BAN NHÂN DÂN",
                   "position": "Chủ tịch"},
    }
    meta.update(extra)
    return meta


def form(meta: dict[str, Any] | bytes | None,
         files: list[tuple[str, bytes, str]]) -> aiohttp.FormData:
    """``metadata`` (a dict as JSON, or raw bytes) and ``file`` parts (name, bytes, type)."""
    data = aiohttp.FormData()
    if meta is not None:
        raw = meta if isinstance(meta, bytes) else json.dumps(meta, ensure_ascii=False).encode()
        data.add_field("metadata", raw, content_type="application/json")
    for name, body, ctype in files:
        data.add_field("file", body, filename=name, content_type=ctype)
    return data


async def signed_by_officer(client, officer_headers: dict[str, str], title: str) -> bytes:
    """A PDF signed by the competent person through ``/v1/sign`` (number and date fields
    prepared for the agency seal)."""
    sign = aiohttp.FormData()
    for name, value in (("key", "officer"), ("role", "competent_person"),
                        ("signer_name", "Nguyễn Văn A"), ("position", "Chủ tịch")):
        sign.add_field(name, value)
    sign.add_field("file", make_pdf(1, title), filename="cv.pdf",
                   content_type="application/pdf")
    resp = await client.post("/v1/sign", headers=officer_headers, data=sign)
    assert resp.status == 200, await resp.text()
    return await resp.read()
