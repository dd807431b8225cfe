"""Health of one signing key: its certificate's validity period and a canary signature.

Rules implemented here:

* A key whose certificate is outside its validity period never signs: a signature made after
  ``notAfter`` (or before ``notBefore``) cannot be validated (RFC 5280 §4.1.2.5, §6.1.3 (a)(2);
  ETSI EN 319 102-1 §5.2.6 X.509 validation: an expired signing certificate without a proof of
  existence before expiry is INDETERMINATE / OUT_OF_BOUNDS_NO_POE). :func:`check_validity`
  raises :class:`KeyExpired` (``KEY_EXPIRED``) or :class:`KeyNotYetValid`
  (``KEY_NOT_YET_VALID``) instead of producing such a signature.
* A canary (:func:`canary`) proves that a key can sign now: an invisible B-B signature on a
  tiny PDF built here, whose ByteRange digest and signature value are then checked against the
  key's certificate (:func:`signing.integrity.existing_signatures`). A token that cannot be
  reached fails with the key's own error (``KEY_LOAD``/``KEY_TOKEN``); a key that signs but does
  not match its certificate (a wrong ``key_label`` next to the right ``cert_label``) fails with
  :class:`CanaryFailed` (``KEY_CANARY_INVALID``). The canary PDF is never kept or returned.
* :func:`key_state` turns what is known about a key into one state: ``expired`` and
  ``not_yet_valid`` first (they need a new certificate whatever the token does), then
  ``unreachable`` (the last check failed), then ``warning`` (fewer than the warning threshold
  of days left), else ``ok``; ``unknown`` before the first check.
"""

from __future__ import annotations

import enum
import io
import math
from datetime import UTC, datetime

from signing.errors import SigningError
from signing.keys import KeySource, SignerRole

SECONDS_PER_DAY = 86_400


class KeyExpired(SigningError):
    """The key's certificate has expired: a signature made with it could not be validated."""

    code = "KEY_EXPIRED"


class KeyNotYetValid(SigningError):
    """The key's certificate is not valid yet (``notBefore`` is in the future)."""

    code = "KEY_NOT_YET_VALID"


class CanaryFailed(SigningError):
    """The canary signature was produced but does not verify against the key's certificate."""

    code = "KEY_CANARY_INVALID"


class KeyState(enum.StrEnum):
    OK = "ok"
    WARNING = "warning"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    UNREACHABLE = "unreachable"
    UNKNOWN = "unknown"


def validity(source: KeySource) -> tuple[datetime, datetime]:
    """(notBefore, notAfter) of the key's certificate (loads the key: may raise its errors)."""
    cert = source.certificate()
    return cert.not_valid_before, cert.not_valid_after


def check_validity(source: KeySource, now: datetime | None = None) -> None:
    """Raise :class:`KeyExpired` / :class:`KeyNotYetValid` when the certificate of ``source``
    is outside its validity period at ``now`` (RFC 5280 §4.1.2.5)."""
    now = now or datetime.now(UTC)
    not_before, not_after = validity(source)
    detail = {"alias": source.alias, "not_before": not_before.isoformat(),
              "not_after": not_after.isoformat()}
    if now >= not_after:
        raise KeyExpired(f"the certificate of key {source.alias!r} expired on "
                         f"{not_after:%Y-%m-%d %H:%M} UTC", detail=detail)
    if now < not_before:
        raise KeyNotYetValid(f"the certificate of key {source.alias!r} is valid only from "
                             f"{not_before:%Y-%m-%d %H:%M} UTC", detail=detail)


_CANARY_PDF: bytes | None = None


def canary_pdf() -> bytes:
    """A one-page empty PDF (built once per process)."""
    global _CANARY_PDF
    if _CANARY_PDF is None:
        from pyhanko.pdf_utils import generic
        from pyhanko.pdf_utils.writer import PdfFileWriter

        writer = PdfFileWriter()
        writer.insert_page(generic.DictionaryObject({
            generic.NameObject("/Type"): generic.NameObject("/Page"),
            generic.NameObject("/MediaBox"): generic.ArrayObject(
                [generic.NumberObject(v) for v in (0, 0, 72, 72)]),
        }))
        out = io.BytesIO()
        writer.write(out)
        _CANARY_PDF = out.getvalue()
    return _CANARY_PDF


def canary(source: KeySource) -> None:
    """Sign :func:`canary_pdf` with ``source`` (invisible, B-B) and check the result's ByteRange
    digest and signature value; raises the key's error or :class:`CanaryFailed`."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    from signing.integrity import existing_signatures
    from signing.sign import SignRequest, sign_pdf

    role = SignerRole.ATTACHMENT if source.role is SignerRole.AGENCY else source.role
    signed = sign_pdf(canary_pdf(), SignRequest(role=role, visible=False, prepare_fields=False),
                      source)
    verdict = existing_signatures(PdfFileReader(io.BytesIO(signed.data), strict=False))
    if verdict != "intact":
        raise CanaryFailed(f"the canary signature of key {source.alias!r} does not verify "
                           "against its certificate (key and certificate do not match?)")


def days_left(not_after: datetime, now: datetime) -> int:
    """Whole days until ``not_after`` (negative once expired: -1 on the day after)."""
    return math.floor((not_after - now).total_seconds() / SECONDS_PER_DAY)


def key_state(*, not_before: datetime | None, not_after: datetime | None, reachable: bool | None,
              now: datetime, warning_days: int) -> KeyState:
    """The one state of a key (see the module rules for the order)."""
    if not_after is not None and now >= not_after:
        return KeyState.EXPIRED
    if not_before is not None and now < not_before:
        return KeyState.NOT_YET_VALID
    if reachable is False:
        return KeyState.UNREACHABLE
    if reachable is None or not_after is None:
        return KeyState.UNKNOWN
    if (not_after - now).total_seconds() < warning_days * SECONDS_PER_DAY:
        return KeyState.WARNING
    return KeyState.OK
