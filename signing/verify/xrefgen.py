"""New objects written at a generation above 0 (a producer quirk of poppler's signer).

ISO 32000-2 §7.5.4: "Except for object number 0, all objects in the cross-reference table shall
initially have generation numbers of 0"; a generation goes up only when the object number is
freed and reused (the free entry names the next generation). poppler's signer (``pdfsig
-add-signature``, Okular; poppler 21–22 at least) writes some objects of its signing update, on
object numbers never used before, at generation 1. pyHanko's strict reader refuses the file
("orphaned generation"), and a non-strictly read file is at best indeterminate.

Tolerated (:func:`read_new_objects`): an in-use entry ``n g`` (g > 0) whose object number has no
entry at all (in use, free, or in an object stream) in any earlier cross-reference section: a
*new* object, not a generation step of an older one, so no object of a signed revision changes
meaning. A later section may rewrite it at the same generation. Every other strict
cross-reference rule of pyHanko still applies (checked on a copy of the sections in which the
tolerated entries read as generation 0); a higher generation on a number that was in use before
without being freed is still refused. Files with hybrid references are not handled here.
"""

from __future__ import annotations

import io

from pyhanko.pdf_utils import misc
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.xref import (
    XRefSection,
    XRefSectionData,
    _check_xref_consistency,
)

__all__ = ["ORPHANED_GENERATION", "read_new_objects"]

#: pyHanko's message for a higher generation with no preceding free entry.
ORPHANED_GENERATION = "has an orphaned generation"


def _mentions(data: XRefSectionData, idnum: int) -> bool:
    return (idnum in data.standard_xrefs or idnum in data.freed
            or idnum in data.xrefs_in_objstm)


def _normalised(sections: list[XRefSection]) -> tuple[list[XRefSection], int] | None:
    """The sections with each tolerated entry at generation 0, and how many were tolerated;
    ``None`` when there are hybrid sections."""
    if any(s.xref_data.hybrid is not None for s in sections):
        return None
    tolerated: dict[int, int] = {}  # object number -> the generation it was created at
    out: list[XRefSection] = []
    count = 0
    for ix, section in enumerate(sections):
        data = section.xref_data
        rewrite: dict[int, tuple[int, int]] = {}
        for idnum, generation in data.higher_generation_refs():
            new = not any(_mentions(prev.xref_data, idnum) for prev in sections[:ix])
            if new or tolerated.get(idnum) == generation:
                tolerated.setdefault(idnum, generation)
                rewrite[idnum] = (0, data.standard_xrefs[idnum][1])
        for idnum in tolerated:  # a free or an object-stream entry ends the exception
            if idnum in data.freed or idnum in data.xrefs_in_objstm:
                return None
        if rewrite:
            count += len(rewrite)
            copy = XRefSectionData()
            copy.freed = dict(data.freed)
            copy.standard_xrefs = {**data.standard_xrefs, **rewrite}
            copy.xrefs_in_objstm = dict(data.xrefs_in_objstm)
            copy.explicit_refs_in_revision = set(data.explicit_refs_in_revision)
            copy.obj_streams_used = set(data.obj_streams_used)
            section = XRefSection(section.meta_info, copy)
        out.append(section)
    return out, count


def read_new_objects(pdf: bytes, decode_limits) -> tuple[PdfFileReader, int] | None:
    """A strict reader of ``pdf`` whose only strict failure was new objects created at a
    generation above 0 (see the module docstring), and how many such entries it has; ``None``
    when the file has anything else wrong (the caller keeps its non-strict path)."""
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False, decode_limits=decode_limits)
    except (misc.PdfError, ValueError, KeyError, TypeError, IndexError, RecursionError):
        return None
    normalised = _normalised(list(reader.xrefs._xref_sections))
    if normalised is None or normalised[1] == 0:
        return None
    try:
        _check_xref_consistency(normalised[0])
    except misc.PdfStrictReadError:
        return None
    reader.strict = True  # objects are parsed strictly from here on
    return reader, normalised[1]
