"""``edoc-gateway check-config``: validate configuration and (optionally) reach the services.

Besides the settings themselves, every file the configuration names must be usable now, not
at the first document that needs it: the signing key file (``EDOC_SIGNING__KEYS_FILE``) must
parse and every file its keys name (PKCS#12, passphrase, PIN, PKCS#11 module, chain) must be
readable; every trust bundle (``EDOC_SIGNING__TRUST_BUNDLES``, a PEM/DER file or a folder of
them) must be readable certificates; every ``EDOC_SIGNING__OTHER_CERTS`` file must be readable.
The signing settings themselves (``tsa_url``, ``tsa_timeout``, ``rate_per_token``,
``rate_per_key``, ``key_check_interval``, ``key_expiry_warning_days`` …) are validated with the
rest of the settings, the older ``EDOC_SIGN_RATE_PER_TOKEN``/``_PER_KEY`` and the key file's
older ``[services]`` table (:mod:`gateway.pki.signing_services`) alike; using either older form is
a warning on stderr. A problem is exit 2 with one line naming the setting, with or without
``--connect``; nothing is printed on stdout then.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from gateway.cli import CliError
from gateway.cli._common import run, settings_from
from gateway.cli._text import json_text, safe
from gateway.config import SigningSettings, deprecated_env

KEYS_SETTING = "EDOC_SIGNING__KEYS_FILE"
CERTS_SETTING = "EDOC_SIGNING__OTHER_CERTS"
TRUST_SETTING = "EDOC_SIGNING__TRUST_BUNDLES"


def register(sub) -> None:
    p = sub.add_parser("check-config", help="validate the configuration and exit")
    p.add_argument("--connect", action="store_true",
                   help="also connect to PostgreSQL and RabbitMQ")
    p.set_defaults(func=_check)


def _readable(path: Path) -> str | None:
    """Why ``path`` cannot be read as a file, or None when it can."""
    if not path.is_file():
        return "no such file" if not path.exists() else "not a file"
    if not os.access(path, os.R_OK):
        return "not readable"
    return None


def check_signing_files(signing: SigningSettings) -> list[str]:
    """Check the files the signing settings name; CliError (exit 2) for the first bad one.

    Returns warnings (a trust bundle without any certificate). Keys are not opened: that needs
    their passphrase or PIN and is the job of the first signature."""
    from gateway.pki.signing_services import legacy_services
    from signing.errors import TrustConfigError
    from signing.keys import KeyConfigError, load_key_config
    from signing.trust import load_certificates

    warnings = list(deprecated_env())
    if signing.keys_file:
        path = Path(signing.keys_file)
        problem = _readable(path)
        if problem:
            raise CliError(f"{KEYS_SETTING}: {path}: {problem}", 2)
        try:
            keys = load_key_config(path)
        except KeyConfigError as exc:
            raise CliError(f"{KEYS_SETTING}: {exc}", 2) from None
        for alias, key in keys.items():
            named = [("path", key.path), ("passphrase_file", key.passphrase_file),
                     ("pin_file", key.pin_file), ("module", key.module)]
            named += [("chain", p) for p in key.chain]
            for what, file in named:
                problem = _readable(file) if file is not None else None
                if problem:
                    raise CliError(f"{KEYS_SETTING}: key {alias!r}: {what} {file}: {problem}", 2)
        try:
            legacy = legacy_services(path)
        except KeyConfigError as exc:
            raise CliError(f"{KEYS_SETTING}: {exc}", 2) from None
        if legacy:
            warnings.append(f"{KEYS_SETTING}: [services] {', '.join(legacy)} of the key file is"
                            " deprecated: use EDOC_SIGNING__TSA_URL, __TSA_TIMEOUT, __OTHER_CERTS")
    for index, cert in enumerate(signing.other_certs):
        problem = _readable(Path(cert))
        if problem:
            raise CliError(f"{CERTS_SETTING}__{index}: {cert}: {problem}", 2)
    for index, bundle in enumerate(signing.trust_bundles):
        path = Path(bundle)
        where = f"{TRUST_SETTING}__{index}"
        if path.is_dir():
            if not os.access(path, os.R_OK | os.X_OK):
                raise CliError(f"{where}: folder {path}: not readable", 2)
        else:
            problem = _readable(path)
            if problem:
                raise CliError(f"{where}: {path}: {problem}", 2)
        try:
            certs = load_certificates(path)
        except (TrustConfigError, OSError) as exc:
            raise CliError(f"{where}: {exc}", 2) from None
        if not certs:
            warnings.append(f"{where}: {path} holds no certificate")
    return warnings


def _check(args) -> int:
    settings = settings_from(args)
    for warning in check_signing_files(settings.signing):
        print(f"edoc-gateway: warning: {safe(warning)}", file=sys.stderr)
    shown = settings.model_dump(mode="json")  # SecretStr fields print as '**********'
    print(json_text(shown, indent=2))
    if args.connect:
        return run(_connect(settings))
    return 0


async def _connect(settings) -> int:
    from gateway.bus.publisher import BrokerUnavailable, ConfirmedPublisher
    from gateway.db.pool import connect

    try:
        conn = await connect(settings.database_url.get_secret_value())
        await conn.close()
    except Exception as exc:
        raise CliError(f"cannot connect to PostgreSQL: {exc}", 3) from None
    publisher = ConfirmedPublisher(settings.amqp_url.get_secret_value())
    try:
        await publisher.connect()
    except BrokerUnavailable as exc:
        raise CliError(str(exc), 3) from None
    finally:
        await publisher.close()
    print("PostgreSQL and RabbitMQ reachable")
    return 0
