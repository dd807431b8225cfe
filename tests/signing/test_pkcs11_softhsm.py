"""PKCS#11 key source against a real SoftHSM2 token populated from the test PKI."""

from __future__ import annotations

import io

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from signing.keys import KeyAlias, KeyLoadError, KeyStore, SignerRole
from signing.keys.token import Pkcs11KeySource
from signing.sign import PadesLevel, SignRequest, sign_pdf
from signing.testpki.softhsm import init_softhsm_token, softhsm_available
from tests.signing.test_sign_levels import assert_valid, request_for, sign_async

pytestmark = pytest.mark.skipif(not softhsm_available(), reason="SoftHSM2 not installed")


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory, test_pki):
    return init_softhsm_token(tmp_path_factory.mktemp("softhsm"), test_pki, spare_labels=("spare",))


def _alias(tok, label="seal", **kw):
    return KeyAlias(
        alias=f"hsm-{label}",
        role=SignerRole.AGENCY,
        owner="000.00.00.H01",
        source="pkcs11",
        module=tok.module,
        token_label=tok.label,
        key_label=label,
        cert_label=label,
        pin_file=tok.pin_file,
        **kw,
    )


def _check(pdf: bytes, pki, n: int = 1):
    reader = PdfFileReader(io.BytesIO(pdf))
    assert len(reader.embedded_signatures) == n
    for sig in reader.embedded_signatures:
        vc = ValidationContext(
            trust_roots=pki.trust_roots, allow_fetching=False, revocation_mode="soft-fail"
        )
        status = validate_pdf_signature(sig, vc)
        assert status.bottom_line, status.pretty_print_details()


def test_pkcs11_signs_and_verifies(softhsm, test_pki, plain_pdf):
    source = Pkcs11KeySource(_alias(softhsm))
    assert source.certificate().subject.native["common_name"] == "UBND tỉnh Thử Nghiệm"
    assert source.not_after().year == 2040
    result = sign_pdf(plain_pdf, SignRequest(role="attachment", document_number="1/UBND"), source)
    _check(result.data, test_pki)


def test_pkcs11_reopens_after_token_session_drops(softhsm, test_pki, plain_pdf):
    source = Pkcs11KeySource(_alias(softhsm, "officer"))
    req = SignRequest(role="competent_person")
    sign_pdf(plain_pdf, req, source)
    token = source.token
    before = token.reopen_count
    token.session.close()  # the token drops under us: handle now invalid
    result = sign_pdf(plain_pdf, req, source)
    assert token.reopen_count == before + 1
    _check(result.data, test_pki)


def test_pkcs11_wrong_pin_is_a_key_error(softhsm, tmp_path):
    bad = tmp_path / "bad.pin"
    bad.write_text("0000\n")
    alias = KeyAlias(**{**_alias(softhsm).__dict__, "token_label": "spare", "pin_file": bad})
    with pytest.raises(KeyLoadError) as err:
        Pkcs11KeySource(alias).signer()
    assert err.value.code == "KEY_LOAD"


def test_keystore_from_toml_with_both_sources(softhsm, test_pki, tmp_path):
    (tmp_path / "p12.pass").write_bytes(test_pki.p12_passphrase + b"\n")
    cfg = tmp_path / "keys.toml"
    cfg.write_text(
        f"""
[keys.officer]
role = "competent_person"
owner = "Nguyễn Văn A"
path = "{test_pki.p12("officer")}"
passphrase_file = "p12.pass"

[keys.seal]
role = "agency"
owner = "000.00.00.H01"
source = "pkcs11"
module = "{softhsm.module}"
token_label = "{softhsm.label}"
key_label = "seal"
cert_label = "seal"
pin_file = "{softhsm.pin_file}"
""",
        encoding="utf-8",
    )
    store = KeyStore.from_file(cfg)
    assert store.aliases["officer"].role is SignerRole.COMPETENT_PERSON
    assert store.aliases["seal"].passphrase_file is None
    assert store.expiry("officer").year == 2040
    assert store.expiry("seal") == test_pki.cert("seal").not_valid_after
    assert store.get("officer").signer() is store.get("officer").signer()  # cached


@pytest.mark.parametrize("level", list(PadesLevel), ids=[lv.value for lv in PadesLevel])
@pytest.mark.parametrize("role", list(SignerRole), ids=[r.value for r in SignerRole])
async def test_role_and_level_with_softhsm(role, level, softhsm, test_pki, pki_session, plain_pdf):
    label = "officer" if role is SignerRole.COMPETENT_PERSON else "seal"
    source = KeyStore({"k": _alias(softhsm, label)}).get("k")
    result = await sign_async(plain_pdf, request_for(role, level), source, test_pki, pki_session)
    assert result.signer_subject == test_pki.cert(label).subject.human_friendly
    await assert_valid(result.data, test_pki, pki_session, signatures=1, level=level)
