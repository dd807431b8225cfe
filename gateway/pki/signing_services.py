"""The TSA and validation services ``/v1/sign`` uses, from the validated settings.

Rules implemented here:

* ``signing.tsa_url``, ``signing.tsa_timeout`` and ``signing.other_certs`` (validated in
  :class:`gateway.config.SigningSettings`) say which RFC 3161 TSA signs the signature timestamp of
  B-T and above and which extra certificates build the B-LT/B-LTA validation data; the trust
  roots are ``signing.trust_bundles`` (files; folders are for verification only).
* Earlier releases read these from an optional ``[services]`` table of the key file
  (``tsa_url``, ``timeout``, ``other_certs``, relative paths against the key file's folder).
  That table is still read — each value only when its setting is not set — and is validated
  like the settings (:func:`legacy_services`: a wrong value is :class:`KeyConfigError`, one
  line naming the key file); using it logs a deprecation warning.
"""

from __future__ import annotations

import json
import logging
import math
import tomllib
from pathlib import Path
from typing import Any

from gateway.config import SigningSettings
from signing.keys import KeyConfigError
from signing.sign import SigningServices

log = logging.getLogger(__name__)

LEGACY_KEYS = ("tsa_url", "timeout", "other_certs")


def legacy_services(keys_file: str | Path) -> dict[str, Any]:
    """The validated ``[services]`` table of the key file (``{}`` when there is none)."""
    path = Path(keys_file)
    try:
        raw = path.read_bytes()
        data = json.loads(raw) if path.suffix.lower() == ".json" else tomllib.loads(raw.decode())
    except (OSError, ValueError, RecursionError) as exc:
        raise KeyConfigError(f"key config {path}: cannot be read: {exc}") from None
    table = data.get("services") if isinstance(data, dict) else None
    if table is None:
        return {}
    where = f"key config {path}: [services]"
    if not isinstance(table, dict):
        raise KeyConfigError(f"{where} must be a table")
    unknown = sorted(set(table) - set(LEGACY_KEYS))
    if unknown:
        raise KeyConfigError(f"{where}: unknown settings {unknown}")
    out: dict[str, Any] = {}
    url = table.get("tsa_url")
    if url is not None and url != "":
        if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
            raise KeyConfigError(f"{where} tsa_url: not an http(s) URL: {url!r}")
        out["tsa_url"] = url
    if "timeout" in table:
        timeout = table["timeout"]
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) \
                or not math.isfinite(timeout) or not 0 < timeout <= 300:
            raise KeyConfigError(f"{where} timeout: must be a number of seconds in (0, 300]")
        out["timeout"] = float(timeout)
    if "other_certs" in table:
        certs = table["other_certs"]
        if not isinstance(certs, list) or not all(isinstance(c, str) for c in certs):
            raise KeyConfigError(f"{where} other_certs: must be a list of file names")
        base = path.resolve().parent
        out["other_certs"] = [str(base / c) for c in certs]
    return out


def signing_services(cfg: SigningSettings) -> SigningServices:
    """The services of ``/v1/sign``: the settings, else the key file's older ``[services]``."""
    legacy = legacy_services(cfg.keys_file) if cfg.keys_file else {}
    set_fields = cfg.model_fields_set
    used = []
    tsa_url = cfg.tsa_url
    if tsa_url is None and "tsa_url" in legacy:
        tsa_url, used = legacy["tsa_url"], [*used, "tsa_url"]
    timeout = cfg.tsa_timeout
    if "tsa_timeout" not in set_fields and "timeout" in legacy:
        timeout, used = legacy["timeout"], [*used, "timeout"]
    other_certs = list(cfg.other_certs)
    if "other_certs" not in set_fields and "other_certs" in legacy:
        other_certs, used = legacy["other_certs"], [*used, "other_certs"]
    if used:
        log.warning("signing services read from the key file's [services] table: deprecated,"
                    " move them to the [signing] settings", extra={
                        "keys": used, "settings": "signing.tsa_url, signing.tsa_timeout,"
                                                  " signing.other_certs"})
    return SigningServices(
        tsa_url=tsa_url,
        timeout=timeout,
        other_certs=tuple(Path(p) for p in other_certs),
        trust_roots=tuple(Path(p) for p in cfg.trust_bundles if Path(p).is_file()),
        allow_fetching=not cfg.offline,
    )
