"""Number/notation and date form fields of Decree 30 originals, and page geometry helpers.

Rules implemented here:

* The number/notation (số, ký hiệu) and the date (ngày ban hành) are assigned when the agency
  signs. They go into text form fields created *before* the first signature
  (:func:`prepare_form_fields`, or automatically by the competent-person signature) and are
  filled in the agency's revision (:func:`fill_text_field`). pyHanko's and Acrobat's diff rules
  accept that revision as form filling (modification level FORM_FILLING): the first signature
  stays valid. Page content is never touched after a signature.
* Fields are never created once a signature exists (that would be a disallowed change):
  :func:`prepare_form_fields` refuses with ``SIGN_ALREADY_SIGNED``.
* A field's appearance is drawn with the embedded stamp font (Vietnamese glyphs are checked
  first), never with a standard 14 font.
* Where the signature field goes (:func:`signature_placement`): the competent person's on the
  requested page (default: last, right column); the agency seal over the left third of the
  competent person's signature (found in the document); attachment and copy text blocks at the
  top right of page 1, a later one under the form fields already there (signature fields and
  the number/date fields: never over them), inside the page or refused with ``SIGN_NO_ROOM``.
  Sizes come from :mod:`signing.appearance`.
"""

from __future__ import annotations

import io
import math
from datetime import datetime

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name, pdf_string
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.layout import BoxConstraints
from pyhanko.pdf_utils.misc import PdfError as PyHankoPdfError
from pyhanko.sign import fields as pyhanko_fields

from signing import appearance as ap
from signing import pdfguard
from signing.errors import PdfUnreadableError, SigningError
from signing.keys import SignerRole

__all__ = [
    "DATE_FIELD",
    "NUMBER_FIELD",
    "Box",
    "FormFieldsMissing",
    "SignRequestError",
    "add_text_fields",
    "default_field_boxes",
    "field_named",
    "fill_text_field",
    "has_signatures",
    "open_writer",
    "page_box",
    "page_count",
    "prepare_form_fields",
    "signature_placement",
    "signed_signature_box",
    "unique_field_name",
]

#: Largest page coordinate accepted (ISO 32000-1 Annex C.2: ±32,767 user units, with room).
MAX_COORDINATE = 1_000_000.0

NUMBER_FIELD = "SoKyHieu"
DATE_FIELD = "NgayBanHanh"

Box = tuple[float, float, float, float]


class SignRequestError(SigningError):
    """The request cannot be honoured for this document (missing data, bad page, no TSA ...)."""

    code = "SIGN_REQUEST"


class FormFieldsMissing(SignRequestError):
    """The agency must fill number/date fields that were not created before the first signature."""

    code = "SIGN_FORM_FIELDS_MISSING"


def open_writer(pdf) -> IncrementalPdfFileWriter:
    """An incremental writer over ``pdf`` (bytes: wrapped without copying; or a binary stream).

    Parsing is non-strict (signing accepts what the agency's editor produced); any parse error
    becomes :class:`signing.errors.PdfUnreadableError`.
    """
    if isinstance(pdf, (bytes, bytearray, memoryview)):
        pdfguard.check_declared_objects(bytes(pdf) if isinstance(pdf, memoryview) else pdf)
    stream = io.BytesIO(pdf) if isinstance(pdf, (bytes, bytearray, memoryview)) else pdf
    try:
        return IncrementalPdfFileWriter(stream, strict=False)
    except (PyHankoPdfError, ValueError, KeyError) as exc:
        raise PdfUnreadableError(f"cannot parse PDF: {exc}") from exc


def page_box(writer, page_ix: int) -> Box:
    """The page's (inherited) /MediaBox, normalised to (x0, y0, x1, y1) with x0 < x1, y0 < y1.

    The ``/Parent`` chain is followed cycle-safely (:func:`signing.pdfguard.inherited`); a page
    without a usable /MediaBox (required, ISO 32000-1 Table 30) is unreadable."""
    page = writer.find_page_for_modification(page_ix)[0].get_object()
    box = pdfguard.inherited(page, "/MediaBox")
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise PdfUnreadableError("the page has no usable /MediaBox") from None
    if not all(math.isfinite(v) and abs(v) <= MAX_COORDINATE for v in (x0, y0, x1, y1)):
        raise PdfUnreadableError("the page's /MediaBox is out of range")
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def page_refs(writer) -> list:
    """References of the document's pages in order, walked cycle-safely (the page tree's
    ``/Count`` is a claim, not a fact)."""
    return list(pdfguard.walk_pages(writer.root))


def page_count(writer) -> int:
    return len(page_refs(writer))


def field_named(writer, name: str):
    """The top-level AcroForm field whose /T is ``name``, or None."""
    try:
        for ref in writer.root["/AcroForm"]["/Fields"]:
            obj = ref.get_object()
            if obj.get("/T") == name:
                return obj
    except KeyError:
        return None
    return None


def has_signatures(writer) -> bool:
    """True when the document already carries a filled signature field."""
    return any(True for _ in pyhanko_fields.enumerate_sig_fields(writer, filled_status=True))


def default_field_boxes(page_box_: Box) -> tuple[Box, Box]:
    """Number/notation under the issuing agency (left); place and date on the right (Decree 30)."""
    x0, _, x1, y1 = page_box_
    return (x0 + 60, y1 - 150, x0 + 260, y1 - 132), (x0 + 300, y1 - 150, x1 - 50, y1 - 132)


def add_text_fields(writer, page_ix: int, specs: list[tuple[str, Box]]) -> None:
    """Create empty text fields ``(name, box)`` on a page; existing names are left alone."""
    page_ref = writer.find_page_for_modification(page_ix)[0]
    root = writer.root
    form = root.get("/AcroForm")
    if form is None:
        form = generic.DictionaryObject({pdf_name("/Fields"): generic.ArrayObject()})
        root[pdf_name("/AcroForm")] = writer.add_object(form)
        writer.update_root()
    else:
        form = form.get_object()
    form.setdefault(pdf_name("/DA"), pdf_string("/Helv 0 Tf 0 g"))
    for name, box in specs:
        if field_named(writer, name) is not None:
            continue
        widget = generic.DictionaryObject(
            {
                pdf_name("/Type"): pdf_name("/Annot"),
                pdf_name("/Subtype"): pdf_name("/Widget"),
                pdf_name("/FT"): pdf_name("/Tx"),
                pdf_name("/T"): pdf_string(name),
                pdf_name("/Rect"): generic.ArrayObject(generic.FloatObject(v) for v in box),
                pdf_name("/F"): generic.NumberObject(4),
                pdf_name("/P"): page_ref,
                pdf_name("/DA"): pdf_string("/Helv 0 Tf 0 g"),
            }
        )
        ref = writer.add_object(widget)
        form["/Fields"].append(ref)
        writer.register_annotation(page_ref, ref)
    writer.update_container(form)


def prepare_form_fields(
    pdf: bytes,
    *,
    page: int = 0,
    number_box: Box | None = None,
    date_box: Box | None = None,
    number_field: str = NUMBER_FIELD,
    date_field: str = DATE_FIELD,
) -> bytes:
    """Add empty number/notation and date text fields (a new revision); before any signature."""
    writer = open_writer(pdf)
    if has_signatures(writer):
        raise SignRequestError(
            "form fields must be created before the first signature", code="SIGN_ALREADY_SIGNED"
        )
    default_number, default_date = default_field_boxes(page_box(writer, page))
    add_text_fields(
        writer,
        page,
        [(number_field, number_box or default_number), (date_field, date_box or default_date)],
    )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def fill_text_field(writer, name: str, value: str, font_size: int = 13) -> None:
    """Set the field's value and draw its appearance with the embedded font."""
    widget = field_named(writer, name)
    if widget is None:
        raise FormFieldsMissing(
            f"no form field {name!r}: create it before the first signature "
            "(prepare_form_fields or the competent-person signature)",
        )
    ap.check_glyphs(value)
    x0, y0, x1, y1 = (float(v) for v in widget["/Rect"])
    style = ap.Decree30StampStyle(lines_above=(value,), font_size=font_size, leading=font_size)
    stamp = style.create_stamp(writer, BoxConstraints(abs(x1 - x0), abs(y1 - y0)), {})
    widget[pdf_name("/V")] = pdf_string(value)
    widget[pdf_name("/AP")] = generic.DictionaryObject(
        {pdf_name("/N"): writer.add_object(stamp.as_form_xobject())}
    )
    writer.update_container(widget)


def unique_field_name(writer, base: str) -> str:
    """``base``, or ``base2``, ``base3`` ... when a field of that name exists."""
    name, n = base, 1
    while field_named(writer, name) is not None:
        n += 1
        name = f"{base}{n}"
    return name


def signed_signature_box(writer) -> tuple[int, Box] | None:
    """Page index and rectangle of the first visible filled signature (the competent person's)."""
    pages = {ref.idnum: i for i, ref in enumerate(page_refs(writer))
             if hasattr(ref, "idnum")}
    for _, _, ref in pyhanko_fields.enumerate_sig_fields(writer, filled_status=True):
        obj = ref.get_object()
        rect = [float(v) for v in obj.get("/Rect", [0, 0, 0, 0])]
        page = obj.get_value_as_reference("/P") if "/P" in obj else None
        if rect[2] - rect[0] > 1 and page is not None and page.idnum in pages:
            return pages[page.idnum], (rect[0], rect[1], rect[2], rect[3])
    return None


def widget_rects(writer, page_ix: int) -> list[Box]:
    """Rectangles of the form field widgets on a page: signature fields (filled or not) and the
    number/date text fields of :func:`prepare_form_fields` alike (ISO 32000-2 §12.5.6.19: a
    widget annotation owns its /Rect on the page; §12.7.5.5 a signature field's widget too)."""
    page = page_refs(writer)[page_ix].get_object()
    annots = page.get("/Annots")
    out: list[Box] = []
    for ref in annots if isinstance(annots, generic.ArrayObject) else ():
        annot = ref.get_object()
        if not isinstance(annot, generic.DictionaryObject) \
                or annot.get("/Subtype") != "/Widget":
            continue
        try:
            x0, y0, x1, y1 = (float(v) for v in annot.get("/Rect", ()))
        except (TypeError, ValueError):
            continue
        if all(math.isfinite(v) for v in (x0, y0, x1, y1)) \
                and abs(x1 - x0) > 1 and abs(y1 - y0) > 1:
            out.append((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
    return out


def signature_placement(writer, request, when: datetime):
    """(page index, box, stamp style) for a :class:`signing.sign.SignRequest`'s role, or None
    for an invisible signature."""
    role = request.role
    if not request.visible:
        return None
    n = page_count(writer)
    if role in (SignerRole.ATTACHMENT, SignerRole.COPY):
        template = request.text_template or (
            ap.ATTACHMENT_TEMPLATE if role is SignerRole.ATTACHMENT else ap.COPY_TEMPLATE
        )
        values = {
            "number": request.document_number or "",
            "time": ap.iso_vietnam(when),
            "copy_form": request.copy_form or "SAO Y",
            "agency": request.agency_name or "",
        }
        lines = [line for line in template.format(**values).split("\n") if line.strip()]
        box = request.box
        if box is None:
            first = page_box(writer, 0)
            box = ap.stacked_below(ap.top_right_box(first, lines),
                                   widget_rects(writer, 0), first)
            if box is None:
                raise SignRequestError("no room left at the top right of page 1 for the"
                                       " stamp inside the page (give a box)", code="SIGN_NO_ROOM")
        return 0, box, ap.text_block_style(lines)
    page = request.page if request.page >= 0 else n + request.page
    if not 0 <= page < n:
        raise SignRequestError(f"page {request.page} out of range (1..{n})", code="SIGN_PAGE")
    if role is SignerRole.AGENCY:
        box = request.box
        if box is None:
            found = signed_signature_box(writer)
            if found is not None:
                page, sig_box = found
            else:
                sig_box = ap.auto_signature_box(page_box(writer, page))
            box = ap.seal_box(sig_box)
        return page, box, ap.seal_style(request.image)
    box = request.box or ap.auto_signature_box(page_box(writer, page))
    style = ap.competent_person_style(
        request.image,
        competence=request.competence,
        position=request.signer_position,
        name=request.signer_name,
    )
    return page, box, style
