"""Red-team helpers: forms planted before a signature and the later revisions that try to change
what the signed document shows (shadow attacks, Mainka et al. NDSS 2021; evil annotations,
Mainka et al. IEEE S&P 2021). Built on :mod:`tests.signing.diffkit`."""

from __future__ import annotations

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import NameObject as N

from signing.report import SignatureReport, Verdict
from tests.signing.diffkit import (
    add_form,
    appearance,
    field_named,
    num,
    page,
    shows,
    text,
    text_field,
)

__all__ = ["HIDDEN", "PRINT", "assert_refused", "checkbox_field", "free_text",
           "planted_form", "set_keys"]

HIDDEN = 2  # ISO 32000-2 Table 167, annotation flag bit 2
PRINT = 4  # bit 3


def assert_refused(sig: SignatureReport) -> None:
    """The signature must not be valid and its integrity must not hold."""
    assert sig.verdict is not Verdict.VALID, sig.to_json()
    assert not sig.integrity_ok, sig.to_json()


def planted_form(w) -> None:
    """What an attacker prepares before the victim signs: a visible ``amount`` field showing
    100 (value 100), a hidden ``shadow`` field showing 1,000,000 (value 1,000,000) over the
    same place, and a field ``note`` whose appearance says APPROVED while its value says
    REJECTED."""
    amount = text_field(w, "amount", "100")
    shadow = text_field(w, "shadow", "1,000,000")
    shadow[N("/F")] = generic.NumberObject(HIDDEN | PRINT)
    note = text_field(w, "note", "REJECTED", rect=(100, 600, 300, 620))
    note[N("/AP")] = generic.DictionaryObject({N("/N"): appearance(w, shows("APPROVED"))})
    add_form(w, [amount, shadow, note])


def set_keys(name: str, **values: generic.PdfObject):
    """A mutation that sets keys (``F=...`` for ``/F``) of the root-level field ``name``."""
    def mutate(w) -> None:
        field = field_named(w, name)
        for key, value in values.items():
            field[N("/" + key)] = value
        w.update_container(field)
    return mutate


def checkbox_field(w, name: str, rect=(100, 650, 120, 670)) -> generic.DictionaryObject:
    on = appearance(w, b"0 g 2 2 16 16 re f")
    off = appearance(w, b"")
    box = generic.DictionaryObject({
        N("/Type"): N("/Annot"), N("/Subtype"): N("/Widget"), N("/Rect"): num(*rect),
        N("/F"): generic.NumberObject(PRINT), N("/FT"): N("/Btn"), N("/T"): text(name),
        N("/V"): N("/Off"), N("/AS"): N("/Off"),
        N("/AP"): generic.DictionaryObject({N("/N"): generic.DictionaryObject(
            {N("/Yes"): on, N("/Off"): off})})})
    return box


def free_text(w, rect, content: bytes, subtype: str = "/FreeText") -> None:
    """A comment appended to page 1 whose appearance is ``content`` (e.g. an opaque box with
    other text over what the page shows)."""
    pg, pg_ref = page(w)
    stream = generic.StreamObject({
        N("/Type"): N("/XObject"), N("/Subtype"): N("/Form"),
        N("/BBox"): num(0, 0, rect[2] - rect[0], rect[3] - rect[1]),
        N("/Resources"): generic.DictionaryObject()}, stream_data=content)
    annot = generic.DictionaryObject({
        N("/Type"): N("/Annot"), N("/Subtype"): N(subtype), N("/Rect"): num(*rect),
        N("/P"): pg_ref, N("/Contents"): text("note"), N("/F"): generic.NumberObject(PRINT),
        N("/DA"): text("/Helv 10 Tf 0 g"),
        N("/AP"): generic.DictionaryObject({N("/N"): w.add_object(stream)})})
    ref = w.add_object(annot)
    pg[N("/Annots")] = generic.ArrayObject([*pg.get("/Annots", []), ref])
    w.update_container(pg)


__all__ += ["shows"]
