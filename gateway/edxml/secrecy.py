"""Secret (mật) documents: recognising the marks that keep a document off the axis.

QCVN 102:2016 and Decree 30/2020 carry only unclassified documents over the axis; a document of
any secrecy level (mật, tối mật, tuyệt mật — Law on Protection of State Secrets 2018) must be
refused. Producers mark secrecy in ``OtherInfo/SphereOfPromulgation`` (free text) or in an
extension element (``SecretLevel``, ``Secret``, ``SecurityLevel``, ``DoMat``).

Text is compared after :func:`fold`: NFKC, invisible format characters removed (zero-width
space/joiners, soft hyphen, bidi marks: a "m\u00adật" is a "mật"), case folded, white-space
collapsed. Two rules, one per kind of element:

* a **dedicated secrecy element** fails closed: it marks a secret document unless its value
  says "not secret" (empty, ``0``, "thường", "bình thường", "không", "không mật" — with or
  without diacritics). An unknown code such as ``2`` is treated as secret;
* **free text** (``SphereOfPromulgation``) is secret when it says "mật" with its diacritic, or a
  secrecy level or "văn bản mật"/"độ mật" without diacritics (plain "mat" alone is too common a
  syllable — mát, mặt, mất — to mean secrecy).
"""

from __future__ import annotations

import re
import unicodedata

#: Extension elements whose only meaning is the secrecy level.
SECRECY_MARKERS = ("SecretLevel", "Secret", "SecurityLevel", "DoMat")

_NOT_SECRET = frozenset({
    "", "0", "00", "thuong", "binh thuong", "khong", "khong mat", "van ban thuong", "none",
    "normal", "false", "no",
})
_SECRET_WITHOUT_DIACRITICS = re.compile(
    r"\b(?:tuyet mat|toi mat|do mat|van ban mat|tai lieu mat)\b")
_SECRET_WORD = re.compile(r"(?<!\w)mật(?!\w)")


def fold(text: str) -> str:
    """NFKC, format characters (Unicode category Cf) removed, case folded, spaces collapsed."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return " ".join(unicodedata.normalize("NFC", text.casefold()).split())


def strip_diacritics(text: str) -> str:
    """Vietnamese letters to their base Latin letter (``đ`` → ``d``)."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def marker_is_secret(value: str | None) -> bool:
    """A dedicated secrecy element: secret unless its value says otherwise (fail closed)."""
    if value is None:
        return False
    folded = strip_diacritics(fold(value))
    return folded not in _NOT_SECRET


def text_is_secret(value: str | None) -> bool:
    """Free text (``SphereOfPromulgation``): does it declare a secrecy level?"""
    if not value:
        return False
    folded = fold(value)
    if _SECRET_WORD.search(folded):
        return not _negated(strip_diacritics(folded))
    plain = strip_diacritics(folded)
    if plain == "mat":
        return True
    return bool(_SECRET_WITHOUT_DIACRITICS.search(plain)) and not _negated(plain)


def _negated(plain: str) -> bool:
    return plain in ("khong mat", "van ban khong mat")
