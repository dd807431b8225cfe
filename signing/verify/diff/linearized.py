"""Linearized files: the first-page and the main cross-reference sections are one revision.

ISO 32000-2 Annex F (F.3): a linearized file starts with the linearization parameter dictionary
(``/Linearized``, ``/L`` the file length, …), followed by the first-page cross-reference section
whose trailer's ``/Prev`` points *forward* to the main cross-reference section at the end of the
file; the final ``startxref`` points back to the first-page section. Both sections describe one
body written at one time: one revision. pyHanko reads them as two revisions (the main section
the older), so a signature whose dictionary sits in the main section is judged as not covering
its revision, and the first-page section as a change made after it.

:func:`merge_linearized` folds the two sections into one revision in the reader, only when the
file's first revision has exactly that shape: the forward ``/Prev``, the linearization
dictionary as the first object, listed in the first-page section, ``/L`` ending at the
``%%EOF`` after the main section, the two sections defining disjoint objects, and every later
section starting after those ``/L`` bytes. An incremental update can never have that shape (it
is appended, its ``/Prev`` points back), so the merge cannot hide a later change; nor can a
first-page ``/Prev`` that points past a later revision (into bytes appended after a signature,
where an attacker then writes a "main section" defining objects the signed page named).
"""

from __future__ import annotations

import dataclasses
import re
import weakref

from pyhanko.pdf_utils import generic, misc
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.xref import XRefSection, XRefSectionData

__all__ = ["merge_linearized", "was_merged"]

_MERGED: weakref.WeakSet[PdfFileReader] = weakref.WeakSet()
_EOF = re.compile(rb"startxref\s+(\d+)\s*%%EOF(\r\n|\r|\n)?")


def was_merged(reader: PdfFileReader) -> bool:
    """Whether :func:`merge_linearized` folded this reader's first two sections."""
    return reader in _MERGED


def _defined(data: XRefSectionData) -> set[int]:
    return set(data.standard_xrefs) | set(data.xrefs_in_objstm) | set(data.freed)


def _is_linearized_pair(reader: PdfFileReader) -> bool:
    sections = reader.xrefs._xref_sections
    if len(sections) < 2:
        return False
    main, first = sections[0], sections[1]
    if main.xref_data.hybrid is not None or first.xref_data.hybrid is not None:
        return False
    if first.meta_info.end_location > main.meta_info.start_location:
        return False  # /Prev points back: an ordinary incremental update
    first_trailer = reader.trailer._trailer_revisions[-2]
    if first_trailer.get("/Prev") != main.meta_info.declared_startxref:
        return False
    if _defined(main.xref_data) & _defined(first.xref_data):
        return False
    # the linearization dictionary: the first object of the file, in the first-page section
    std = first.xref_data.standard_xrefs
    if not std:
        return False
    idnum, (gen, offset) = min(std.items(), key=lambda item: item[1][1])
    if offset >= first.meta_info.start_location:
        return False
    main_offsets = [off for _, off in main.xref_data.standard_xrefs.values()]
    if main_offsets and min(main_offsets) < offset:
        return False
    lin = reader.get_object(generic.Reference(idnum, gen, reader))
    if not isinstance(lin, generic.DictionaryObject) or "/Linearized" not in lin:
        return False
    length = lin.get("/L")
    stream = reader.stream
    stream.seek(main.meta_info.end_location)
    m = _EOF.search(stream.read(4096))
    if m is None or int(m.group(1)) != first.meta_info.declared_startxref:
        return False
    end = main.meta_info.end_location + m.end()
    if not (isinstance(length, int) and end - len(m.group(2) or b"") <= length <= end):
        return False
    # F.2: the linearized file is the prefix of length /L; every update comes after it
    return all(s.meta_info.start_location >= length for s in sections[2:])


def merge_linearized(reader: PdfFileReader) -> bool:
    """Fold the first-page and main sections of a linearized first revision into one revision
    (ISO 32000-2 Annex F); ``False`` (reader untouched) for any other file."""
    try:
        if not _is_linearized_pair(reader):
            return False
    except (misc.PdfError, ValueError, TypeError, KeyError, IndexError, AttributeError):
        return False  # not the Annex F shape: the file is read as pyHanko reads it
    sections = reader.xrefs._xref_sections
    main, first = sections[0], sections[1]
    data = XRefSectionData()
    for part in (main.xref_data, first.xref_data):
        data.freed.update(part.freed)
        data.standard_xrefs.update(part.standard_xrefs)
        data.xrefs_in_objstm.update(part.xrefs_in_objstm)
        data.explicit_refs_in_revision |= part.explicit_refs_in_revision
        data.obj_streams_used |= part.obj_streams_used
    meta = dataclasses.replace(
        first.meta_info,
        size=max(main.meta_info.size, first.meta_info.size),
        end_location=max(main.meta_info.end_location, first.meta_info.end_location))
    sections[0:2] = [XRefSection(meta, data)]
    trailers = reader.trailer._trailer_revisions  # newest first
    merged = generic.DictionaryObject({**trailers[-1], **trailers[-2]})
    trailers[-2:] = [merged]
    reader._historical_resolver_cache.clear()
    _MERGED.add(reader)
    return True
