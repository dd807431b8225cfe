"""Small PDFs with form fields, built in the tests, and incremental updates on them.

Used by ``test_diff_forms.py`` and ``test_diff_shadow.py``: every document starts from
:func:`signing.testpki.pdfs.make_pdf`, gets its fields in an unsigned revision, is signed with
stock pyHanko (:func:`signing.testpki.samples.sign_sample`) and then changed by ``mutate``.
"""

from __future__ import annotations

import io
from collections.abc import Callable

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import NameObject as N
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from signing.report import SignatureReport
from signing.testpki.pdfs import make_pdf
from signing.verify import VerificationPolicy, verify_pdf

Mutate = Callable[[IncrementalPdfFileWriter], None]


def num(*values: float) -> generic.ArrayObject:
    return generic.ArrayObject([generic.FloatObject(v) if isinstance(v, float)
                                else generic.NumberObject(v) for v in values])


def text(value: str) -> generic.TextStringObject:
    return generic.TextStringObject(value)


def incremental(pdf: bytes, mutate: Mutate) -> bytes:
    w = IncrementalPdfFileWriter(io.BytesIO(pdf))
    mutate(w)
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def page(w) -> tuple[generic.DictionaryObject, generic.IndirectObject]:
    kids = w.root["/Pages"]["/Kids"]
    return kids[0].get_object(), kids.raw_get(0)


def appearance(w, content: bytes, font_ref=None) -> generic.IndirectObject:
    """A form XObject (ISO 32000-2 §8.10) for a widget's ``/AP /N``."""
    resources = generic.DictionaryObject()
    if font_ref is not None:
        resources[N("/Font")] = generic.DictionaryObject({N("/Helv"): font_ref})
    stream = generic.StreamObject({
        N("/Type"): N("/XObject"), N("/Subtype"): N("/Form"),
        N("/BBox"): num(0, 0, 200, 20), N("/Resources"): resources,
    }, stream_data=content)
    return w.add_object(stream)


def shows(value: str) -> bytes:
    return b"/Tx BMC BT /Helv 10 Tf 2 5 Td (" + value.encode() + b") Tj ET EMC"


def field_named(w, name: str) -> generic.DictionaryObject:
    """A root-level field of the form (read through the writer: updates go into it)."""
    for ref in w.root["/AcroForm"]["/Fields"]:
        field = ref.get_object()
        if str(field.get("/T")) == name:
            return field
    raise KeyError(name)


def add_form(w, fields: list[generic.DictionaryObject],
             widgets: list[generic.IndirectObject] | None = None,
             ) -> list[generic.IndirectObject]:
    """Register ``fields`` (root level) in a new ``/AcroForm`` with ``/DR /Font /Helv`` and put
    ``widgets`` (default: the fields, merged with their widget) on page 1."""
    pg, pg_ref = page(w)
    font = w.add_object(generic.DictionaryObject({
        N("/Type"): N("/Font"), N("/Subtype"): N("/Type1"), N("/BaseFont"): N("/Helvetica"),
        N("/Name"): N("/Helv"), N("/Encoding"): N("/WinAnsiEncoding")}))
    refs = [w.add_object(f) for f in fields]
    annots = generic.ArrayObject(widgets if widgets is not None else refs)
    for a in annots:
        a.get_object()[N("/P")] = pg_ref
    pg[N("/Annots")] = annots
    w.update_container(pg)
    fonts = w.add_object(generic.DictionaryObject({N("/Helv"): font}))
    w.root[N("/AcroForm")] = w.add_object(generic.DictionaryObject({
        N("/Fields"): generic.ArrayObject(refs),
        N("/DR"): generic.DictionaryObject({N("/Font"): fonts}),
        N("/DA"): generic.TextStringObject("/Helv 0 Tf 0 g")}))
    w.update_root()
    return refs


def widget_dict(rect=(100, 700, 300, 720)) -> generic.DictionaryObject:
    return generic.DictionaryObject({
        N("/Type"): N("/Annot"), N("/Subtype"): N("/Widget"), N("/Rect"): num(*rect),
        N("/F"): generic.NumberObject(4)})


def text_field(w, name: str, value: str | None, rect=(100, 700, 300, 720),
               ) -> generic.DictionaryObject:
    """A text field merged with its widget (§12.7.4.3), showing ``value``."""
    field = widget_dict(rect)
    field.update({N("/FT"): N("/Tx"), N("/T"): text(name),
                  N("/DA"): text("/Helv 10 Tf 0 g"),
                  N("/AP"): generic.DictionaryObject({N("/N"): appearance(
                      w, shows(value or ""))})})
    if value is not None:
        field[N("/V")] = text(value)
    return field


def fields_pdf(build: Callable[[IncrementalPdfFileWriter], None], title: str = "Form") -> bytes:
    """One page with the form ``build`` adds, in a second (unsigned) revision."""
    return incremental(make_pdf(1, title), build)


def verify_first(pdf: bytes, pki) -> SignatureReport:
    """The report of the first signature of ``pdf`` (offline, test PKI trusted)."""
    report = verify_pdf(pdf, VerificationPolicy(trust_roots=pki.trust_roots, offline=True))
    return report.signatures[0]


def codes(rep: SignatureReport) -> set[str]:
    return {w["code"] for w in rep.warnings}
