"""A real PKCS#11 token for tests and the demo: SoftHSM2 populated from the test PKI.

``init_softhsm_token(folder, pki)`` writes a ``softhsm2.conf`` with an empty token directory in
``folder``, points ``SOFTHSM2_CONF`` at it (SoftHSM reads it when the module is first loaded, so
call this before anything loads the module in this process; child processes inherit it), creates
the token with ``softhsm2-util --init-token`` and stores keys, certificates and their chains with
certomancer's alchemist (what ``certomancer alch`` does). Start from an empty folder every time:
storing is not idempotent.

A test process that also runs other SoftHSM tests must not load the module with a second
configuration: :func:`init_softhsm_token_in_child` creates the token in a child process and
leaves this process's environment alone (point the signing pool's workers at ``token.conf``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from signing.errors import TestPkiError

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


@dataclass(frozen=True)
class SoftHsmToken:
    module: str
    label: str
    pin: str
    pin_file: Path
    conf: Path
    cert_labels: tuple[str, ...]


def softhsm_available(module: str = SOFTHSM_MODULE) -> bool:
    return Path(module).exists() and shutil.which("softhsm2-util") is not None


def init_softhsm_token(
    folder: Path,
    pki,
    *,
    label: str = "agency",
    pin: str = "1234",
    so_pin: str = "5678",
    certs: tuple[str, ...] = ("seal", "officer"),
    module: str = SOFTHSM_MODULE,
    spare_labels: tuple[str, ...] = (),
) -> SoftHsmToken:
    """Create and populate a SoftHSM2 token holding ``certs`` of the test PKI (with chains)."""
    if not softhsm_available(module):
        raise TestPkiError("SoftHSM2 is not installed", code="TEST_PKI_SOFTHSM")
    folder = Path(folder)
    tokens = folder / "tokens"
    tokens.mkdir(parents=True, exist_ok=False)
    conf = folder / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)
    for token_label in (label, *spare_labels):  # spare tokens stay empty (same PINs)
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", token_label,
             "--pin", pin, "--so-pin", so_pin],
            check=True, capture_output=True, env={**os.environ, "SOFTHSM2_CONF": str(conf)},
        )  # fmt: skip
    from certomancer.integrations import alchemist
    from certomancer.registry import CertLabel

    session = alchemist.open_pkcs11_session(lib_location=module, token_label=label, pin=pin)
    try:
        backend = alchemist.DefaultAlchemistBackend(session)
        alchemist.Alchemist(backend, pki.arch).store_key_bundles(
            certs={CertLabel(c) for c in certs}, include_chains=True
        )
    finally:
        session.close()
    pin_file = folder / "user.pin"
    pin_file.write_text(pin + "\n")
    pin_file.chmod(0o600)
    return SoftHsmToken(module, label, pin, pin_file, conf, tuple(certs))


_CHILD = """
import sys
from pathlib import Path
from signing.testpki import build_test_pki
from signing.testpki.softhsm import init_softhsm_token
pki = build_test_pki(Path(sys.argv[1]))
init_softhsm_token(Path(sys.argv[2]), pki, label=sys.argv[3], pin=sys.argv[4],
                   certs=tuple(sys.argv[5].split(",")), spare_labels=tuple(sys.argv[6:]))
"""


def init_softhsm_token_in_child(
    folder: Path,
    pki,
    *,
    label: str = "agency",
    pin: str = "1234",
    certs: tuple[str, ...] = ("seal", "officer"),
    module: str = SOFTHSM_MODULE,
    spare_labels: tuple[str, ...] = (),
) -> SoftHsmToken:
    """:func:`init_softhsm_token` run in a child process (the same test PKI, rebuilt there from
    its folder): this process neither loads the PKCS#11 module nor changes ``SOFTHSM2_CONF``."""
    import sys

    if not softhsm_available(module):
        raise TestPkiError("SoftHSM2 is not installed", code="TEST_PKI_SOFTHSM")
    folder = Path(folder)
    subprocess.run([sys.executable, "-c", _CHILD, str(pki.folder.parent), str(folder), label,
                    pin, ",".join(certs), *spare_labels],
                   check=True, capture_output=True, timeout=120)
    return SoftHsmToken(module, label, pin, folder / "user.pin", folder / "softhsm2.conf",
                        tuple(certs))
