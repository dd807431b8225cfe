"""File-structure rules stock pyHanko gets wrong: undefined references, trailer-only objects.

* **Undefined references are null** (ISO 32000-2 §7.3.10: "an indirect reference to an undefined
  object shall not be considered an error by a PDF processor; it shall be treated as a reference
  to the null object"). pyHanko's strict reader raises instead, so a file whose earlier revision
  refers to an object that only a later revision defines (an office suite writes ``/DocChecksum
  n 0 R`` in every trailer and defines ``n`` later) fails in the difference analysis.
  :func:`tolerant_resolver` gives the analysis historical views that read such references as
  null and remember them (warning ``UNDEFINED_REFERENCE_NULL``).
* **Only some trailer keys are document content** (ISO 32000-2 §7.5.5, Table 15): ``/Root``,
  ``/Info``, ``/ID`` and ``/Encrypt`` carry document meaning, ``/Size``, ``/Prev`` and
  ``/XRefStm`` are file structure. Objects reachable only from other (vendor) trailer keys are no
  document content, like objects reachable from nothing at all (orphans).
  :class:`OrphanRule` replaces pyHanko's ``_find_orphans``, which assumes that no object refers
  to one a later revision defines: here such forward references are allowed, so a new object
  counts as an orphan only when the new revision's document does not reach it.
* **Defining an object the signed document named changes the document** (§7.3.10 read the
  other way round): when the previous revision's document (:data:`DOCUMENT_TRAILER_KEYS`)
  refers to an object it does not define (null then), a revision that defines it changes
  every place that referred to it. :func:`forward_refs` lists those objects; the policy
  accepts them only through approvals of each such place (never a rule's blanket approval of
  the new object, see :class:`~signing.verify.diff.policy.GatewayDiffPolicy`).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Iterator

from pyhanko.pdf_utils import generic, misc
from pyhanko.pdf_utils.reader import HistoricalResolver, PdfFileReader
from pyhanko.sign.diff_analysis.rules_api import ReferenceUpdate, WhitelistRule

__all__ = [
    "DOCUMENT_TRAILER_KEYS",
    "NOTES",
    "OrphanRule",
    "TolerantResolver",
    "forward_refs",
    "note",
    "tolerant_resolver",
]

DOCUMENT_TRAILER_KEYS = frozenset({"/Root", "/Info", "/ID", "/Encrypt"})
"""Trailer keys that carry document meaning (ISO 32000-2 Table 15)."""

NOTES: contextvars.ContextVar[list[tuple[str, str]] | None] = contextvars.ContextVar(
    "gateway_diff_notes", default=None)
"""What the running difference analysis tolerated past stock pyHanko: ``(code, message)``."""


def note(code: str, message: str) -> None:
    """Record a tolerated deviation for the signature being analysed (no-op outside one)."""
    notes = NOTES.get()
    if notes is not None and (code, message) not in notes:
        notes.append((code, message))


class TolerantResolver(HistoricalResolver):
    """A historical view reading references to objects undefined in its revision as null
    (ISO 32000-2 §7.3.10); every such reference is kept in :attr:`nulled`."""

    nulled: set[generic.Reference]

    def get_object(self, ref: generic.Reference, as_metadata_stream: bool = False):
        try:
            return super().get_object(ref, as_metadata_stream=as_metadata_stream)
        except misc.PdfStrictReadError:
            if self.reader.xrefs.get_historical_ref(ref, self.revision) is not None:
                raise  # defined but unreadable: a real error
        self.nulled.add(generic.Reference(ref.idnum, ref.generation))
        null = generic.NullObject()
        self.cache[ref] = null
        return null


def tolerant_resolver(reader: PdfFileReader, revision: int) -> TolerantResolver:
    """The reader's (cached) historical view of ``revision``, made a :class:`TolerantResolver`.

    The reader hands out one resolver per revision to every caller (signature validation, the
    rules); converting that instance keeps one cache and one reverse-reference table per
    revision. The subclass adds behaviour only to a failing strict read."""
    res = reader.get_historical_resolver(revision)
    if not isinstance(res, TolerantResolver):
        res.__class__ = TolerantResolver
        res.nulled = set()
    return res  # type: ignore[return-value]


def document_trailer(res: HistoricalResolver) -> generic.DictionaryObject:
    """The revision's trailer restricted to the keys that carry document meaning."""
    trailer = res.trailer_view
    return generic.DictionaryObject(
        {k: trailer.raw_get(k) for k in DOCUMENT_TRAILER_KEYS if k in trailer})


def forward_refs(old: HistoricalResolver, new: HistoricalResolver) -> frozenset[generic.Reference]:
    """Objects ``new`` defines that ``old`` did not, but that ``old``'s document already
    referred to (read as null in ``old``): defining them changes what those places show.

    Uses pyHanko's table of the old revision's reference paths (built by the policy anyway);
    references only non-document trailer keys hold (§7.5.5) are not counted."""
    xrefs = old.reader.xrefs
    old._load_reverse_xref_cache()
    ahead = set()
    for ref in new.explicit_refs_in_revision():
        if xrefs.get_historical_ref(ref, old.revision) is not None:
            continue
        if any(p.path and p.path[0] in DOCUMENT_TRAILER_KEYS
               for p in old._get_usages_of_ref(ref)):
            ahead.add(ref)
    return frozenset(ahead)


def reachable_refs(res: HistoricalResolver, start: generic.PdfObject) -> set[generic.Reference]:
    """Every reference reachable from ``start`` in the revision of ``res`` (each object read
    once, every key followed, cycle-safe, no recursion)."""
    seen: set[generic.Reference] = set()
    stack: list[generic.PdfObject] = [start]
    while stack:
        obj = stack.pop()
        if isinstance(obj, generic.IndirectObject):
            ref = generic.Reference(obj.idnum, obj.generation)
            if ref in seen:
                continue
            seen.add(ref)
            obj = res(obj.reference)
        if isinstance(obj, generic.DictionaryObject):  # streams included
            stack.extend(obj.values())
        elif isinstance(obj, generic.ArrayObject):
            stack.extend(obj)
    return seen


class OrphanRule(WhitelistRule):
    """New objects no document content can reach are no change to the document (cleared at
    LTA_UPDATES, as pyHanko's ``ignore_orphaned_objects`` does).

    A candidate is an object the new revision writes that was undefined in the previous one.
    The cheap pass of pyHanko (what the trailer and the rewritten old objects reach through new
    objects) clears most; what remains is then checked against everything the new revision's
    document (:data:`DOCUMENT_TRAILER_KEYS`) reaches, so that an old object referring ahead
    to the candidate (a forward reference, read as null until now) keeps it a change."""

    def apply(self, old: HistoricalResolver, new: HistoricalResolver
              ) -> Iterable[ReferenceUpdate]:
        return (ReferenceUpdate(ref) for ref in find_orphans(new))


def find_orphans(new: HistoricalResolver) -> set[generic.Reference]:
    reader = new.reader
    xrefs = reader.xrefs
    prev_rev = new.revision - 1
    candidates: set[generic.Reference] = set()
    updated_old: list[generic.Reference] = []
    for ref in new.explicit_refs_in_revision():
        if xrefs.get_historical_ref(ref, prev_rev) is None:
            candidates.add(ref)
        else:
            updated_old.append(ref)
    if not candidates:
        return set()
    trailer = document_trailer(new)

    def objs_to_check() -> Iterator[generic.PdfObject]:
        yield trailer
        for ref in updated_old:
            yield new(ref)

    for obj in objs_to_check():
        candidates -= new.collect_dependencies(obj, since_revision=new.revision)
        if not candidates:
            return set()
    # Objects left: orphans unless something older reaches them (forward references). Only
    # revisions that write unreferenced objects pay for this walk.
    candidates -= reachable_refs(new, trailer)
    extra = sorted(k for k in new.trailer_view if k not in DOCUMENT_TRAILER_KEYS
                   and k not in ("/Size", "/Prev", "/XRefStm"))
    if candidates and extra:
        note("TRAILER_ONLY_OBJECTS",
             f"revision {new.revision} defines objects that only non-document trailer keys "
             f"({', '.join(extra)}) or nothing reach: not judged as document content "
             "(ISO 32000-2 §7.5.5)")
    return candidates
