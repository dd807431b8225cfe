"""Long-term-validation updates: the DSS and its VRI hold validation material only.

ISO 32000-2 §12.8.4.3 (Table 261) and ETSI EN 319 142-1 §5.4.2: the document security store
``/Root /DSS`` has ``/Type /DSS``, ``/VRI``, ``/Certs``, ``/CRLs``, ``/OCSPs`` (arrays of streams
holding DER certificates, CRLs and OCSP responses). §12.8.4.4 (Table 262) and §5.4.3: each VRI
entry (key: upper-case hex SHA-1 of a signature) has ``/Type /VRI``, ``/Cert``, ``/CRL``,
``/OCSP`` (arrays of such streams), ``/TU`` (a date) and ``/TS`` (a DER time-stamp stream).
Later revisions that add, replace, rewrite, merge or drop this material change no document
content, so they are LTA_UPDATES. Stock pyHanko's ``DSSCompareRule`` refuses rewritten,
merged or dropped VRI entries, a ``/Type`` key in the VRI dictionary and DSS objects rewritten
in place; :class:`LtvUpdateRule` replaces it and accepts them, as tightly as the tables allow:

* every key outside the tables is refused, and ``/Type`` values must be ``/DSS`` / ``/VRI``;
* every object this revision writes that the DSS reaches must be one of those dictionaries,
  arrays, or streams whose dictionary has only stream keys and whose data parse as the DER
  structure its key names;
* an object the signed revision also used outside ``/Root /DSS`` (a page's content, an
  annotation, a form field; also ahead of its definition, see :mod:`.structure`) is approved
  only on its DSS paths and on paths through trailer keys that carry no document: its other
  uses stay unexplained, so the revision is a change (pyHanko's multi-usage table keeps them).
"""

from __future__ import annotations

from collections.abc import Iterator

from asn1crypto import cms, crl, ocsp, x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.decode_limits import DecodePurpose
from pyhanko.pdf_utils.reader import HistoricalResolver, RawPdfPath
from pyhanko.sign.diff_analysis import SuspiciousModification
from pyhanko.sign.diff_analysis.commons import compare_key_refs
from pyhanko.sign.diff_analysis.constants import VRI_KEY_PATTERN
from pyhanko.sign.diff_analysis.rules_api import Context, ReferenceUpdate, WhitelistRule

from signing.verify.diff.structure import DOCUMENT_TRAILER_KEYS, note

__all__ = ["LtvUpdateRule"]

DSS_KEYS = frozenset({"/Type", "/VRI", "/Certs", "/CRLs", "/OCSPs"})
VRI_ENTRY_KEYS = frozenset({"/Type", "/Cert", "/CRL", "/OCSP", "/TU", "/TS"})
STREAM_KEYS = frozenset({"/Length", "/Filter", "/DecodeParms", "/DL"})
_DER = {
    "/Certs": (x509.Certificate, DecodePurpose.CERTIFICATE),
    "/Cert": (x509.Certificate, DecodePurpose.CERTIFICATE),
    "/CRLs": (crl.CertificateList, DecodePurpose.CRL),
    "/CRL": (crl.CertificateList, DecodePurpose.CRL),
    "/OCSPs": (ocsp.OCSPResponse, DecodePurpose.OCSP_RESPONSE),
    "/OCSP": (ocsp.OCSPResponse, DecodePurpose.OCSP_RESPONSE),
    "/TS": (cms.ContentInfo, DecodePurpose.GENERIC),
}
_DSS_PATH = ("/Root", "/DSS")


class LtvDssError(SuspiciousModification):
    """A later revision's DSS holds something that is not validation material."""

    code = "LTV_DSS_NOT_VALIDATION_DATA"


class LtvUpdateRule(WhitelistRule):
    """Clears DSS/VRI updates (qualify at LTA_UPDATES); see the module for the rule."""

    def apply(self, old: HistoricalResolver, new: HistoricalResolver
              ) -> Iterator[ReferenceUpdate]:
        return _Check(old, new).run()


class _Check:
    def __init__(self, old: HistoricalResolver, new: HistoricalResolver) -> None:
        self.old = old
        self.new = new
        self.written = new.explicit_refs_in_revision()
        self.tolerated: list[str] = []

    # -- approvals -------------------------------------------------------------------------
    def approve(self, value: generic.PdfObject, path: tuple) -> Iterator[ReferenceUpdate]:
        """Approve ``value`` (when an indirect object this revision writes) on its DSS paths.

        An object the signed revision already used is approved on each of its old paths that
        lie in the DSS, and on nothing else: a use outside the DSS stays to be explained."""
        if not isinstance(value, generic.IndirectObject):
            return
        ref = value.reference
        if ref not in self.written:
            return
        old_paths = self.old._get_usages_of_ref(ref)
        if not old_paths:
            yield ReferenceUpdate(ref, Context.from_absolute(self.old, RawPdfPath(*path)))
            return
        if self.old.reader.xrefs.get_historical_ref(ref, self.old.revision) is not None:
            self.tolerated.append(f"{ref.idnum} {ref.generation} R rewritten in place")
        for p in old_paths:
            steps = tuple(p)
            # uses in the DSS, or through trailer keys that carry no document (§7.5.5)
            if steps[:2] == _DSS_PATH or (steps and steps[0] not in DOCUMENT_TRAILER_KEYS):
                yield ReferenceUpdate(ref, Context.from_absolute(self.old, p))

    # -- structure ---------------------------------------------------------------------------
    def run(self) -> Iterator[ReferenceUpdate]:
        old, new = self.old, self.new
        ctx = Context.from_absolute(old, RawPdfPath(*_DSS_PATH))
        gen = compare_key_refs("/DSS", old, old.root, new.root)
        try:
            while True:
                yield ReferenceUpdate(next(gen), ctx)
        except StopIteration as done:
            old_dss, new_dss = done.value
        if new_dss is None:
            return
        dss = _dict(new_dss, "/DSS")
        unknown = set(dss.keys()) - DSS_KEYS
        if unknown:
            raise LtvDssError(f"unexpected keys in the DSS: {sorted(unknown)}")
        _type(dss, "/DSS")
        for key in ("/Certs", "/CRLs", "/OCSPs"):
            if key in dss:
                yield from self.der_array(dss.raw_get(key), key, (*_DSS_PATH, key))
        if "/VRI" in dss:
            yield from self.vri(dss.raw_get("/VRI"), old_dss)
        elif isinstance(old_dss, generic.DictionaryObject) and "/VRI" in old_dss:
            self.tolerated.append("VRI dictionary dropped")
        if old_dss is not None and isinstance(old_dss, generic.DictionaryObject):
            if old.root.raw_get("/DSS") != new.root.raw_get("/DSS"):
                self.tolerated.append("DSS replaced")
        if self.tolerated:
            note("LTV_UPDATE_TOLERATED",
                 f"revision {new.revision} rewrote validation data in the DSS "
                 f"({'; '.join(sorted(set(self.tolerated)))}): LTA_UPDATES "
                 "(ISO 32000-2 §12.8.4.3-4, ETSI EN 319 142-1 §5.4.2-3)")

    def vri(self, raw: generic.PdfObject, old_dss) -> Iterator[ReferenceUpdate]:
        path = (*_DSS_PATH, "/VRI")
        yield from self.approve(raw, path)
        vri = _dict(raw.get_object(), "/VRI")
        old_vri = None
        if isinstance(old_dss, generic.DictionaryObject) and "/VRI" in old_dss:
            old_vri = old_dss["/VRI"]
        for key in vri:
            if key == "/Type":
                _type(vri, "/VRI")
                self.tolerated.append("/Type in the VRI dictionary")
                continue
            if not VRI_KEY_PATTERN.fullmatch(key):
                raise LtvDssError(f"VRI key {key} is not a signature hash")
            yield from self.vri_entry(vri.raw_get(key), (*path, key))
        if isinstance(old_vri, generic.DictionaryObject):
            for key in old_vri:
                if key != "/Type" and (key not in vri or vri.raw_get(key) != old_vri.raw_get(key)):
                    self.tolerated.append(f"VRI entry {key} dropped or replaced")

    def vri_entry(self, raw: generic.PdfObject, path: tuple) -> Iterator[ReferenceUpdate]:
        yield from self.approve(raw, path)
        entry = _dict(raw.get_object(), "VRI entry")
        unknown = set(entry.keys()) - VRI_ENTRY_KEYS
        if unknown:
            raise LtvDssError(f"unexpected keys in a VRI entry: {sorted(unknown)}")
        _type(entry, "/VRI")
        for key in ("/Cert", "/CRL", "/OCSP"):
            if key in entry:
                yield from self.der_array(entry.raw_get(key), key, (*path, key))
        if "/TU" in entry and not isinstance(entry.raw_get("/TU"), generic.TextStringObject
                                             | generic.ByteStringObject):
            raise LtvDssError("/TU of a VRI entry is not a direct date string")
        if "/TS" in entry:
            yield from self.der_stream(entry.raw_get("/TS"), "/TS", (*path, "/TS"))

    def der_array(self, raw: generic.PdfObject, key: str, path: tuple
                  ) -> Iterator[ReferenceUpdate]:
        yield from self.approve(raw, path)
        arr = raw.get_object()
        if not isinstance(arr, generic.ArrayObject):
            raise LtvDssError(f"{key} in the DSS is not an array")
        for ix, item in enumerate(arr):
            yield from self.der_stream(item, key, (*path, ix))

    def der_stream(self, raw: generic.PdfObject, key: str, path: tuple
                   ) -> Iterator[ReferenceUpdate]:
        if not isinstance(raw, generic.IndirectObject):
            raise LtvDssError(f"{key} in the DSS holds a direct object, not a stream")
        stream = raw.get_object()
        if not isinstance(stream, generic.StreamObject):
            raise LtvDssError(f"{key} in the DSS refers to a non-stream object")
        if raw.reference not in self.written:
            return  # unchanged since an earlier revision: nothing to explain here
        unknown = set(stream.keys()) - STREAM_KEYS
        if unknown:
            raise LtvDssError(f"{key} stream in the DSS has keys {sorted(unknown)}")
        length = stream.raw_get("/Length") if "/Length" in stream else None
        if isinstance(length, generic.IndirectObject):
            if not isinstance(length.get_object(), int):
                raise LtvDssError(f"{key} stream /Length is not a number")
            yield from self.approve(length, (*path, "/Length"))
        spec, purpose = _DER[key]
        try:
            len(spec.load(stream.read_data(purpose), strict=True))  # top-level structure only
        except Exception as exc:
            raise LtvDssError(f"{key} stream in the DSS is not a DER {spec.__name__}") from exc
        yield from self.approve(raw, path)


def _dict(obj: generic.PdfObject, what: str) -> generic.DictionaryObject:
    if not isinstance(obj, generic.DictionaryObject) or isinstance(obj, generic.StreamObject):
        raise LtvDssError(f"{what} is not a dictionary")
    return obj


def _type(d: generic.DictionaryObject, expected: str) -> None:
    if "/Type" in d and d.raw_get("/Type") != expected:
        raise LtvDssError(f"/Type {d.raw_get('/Type')} where {expected} is expected")
