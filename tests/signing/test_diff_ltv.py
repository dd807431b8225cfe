"""LTV increments (ISO 32000-2 §12.8.4.3-4, ETSI EN 319 142-1 §5.4.2-3): a later revision that
adds, replaces, rewrites, merges or drops DSS/VRI validation material is LTA_UPDATES; anything in
the DSS that is not validation material is still a modification.

The base document: the officer signs at B-LT (pyHanko adds a DSS with a VRI entry in the next
revision), then the agency seal signs at B-B, so the seal's signed revision holds that DSS: every
increment below is judged against an existing DSS/VRI (where stock pyHanko 0.38 refuses).
"""

from __future__ import annotations

import datetime
import io
from collections.abc import Callable

import pytest
import pytest_asyncio
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from signing.testpki.samples import sign_sample
from signing.verify import VerificationPolicy, verify_pdf

D, A, N = generic.DictionaryObject, generic.ArrayObject, pdf_name


@pytest.fixture(scope="module")
def offline(test_pki):
    return VerificationPolicy(trust_roots=test_pki.trust_roots, offline=True)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def base(test_pki, pki_session, plain_pdf) -> bytes:
    blt = await sign_sample(plain_pdf, test_pki, "officer", level="B-LT", session=pki_session)
    return await sign_sample(blt, test_pki, "seal", level="B-B")


def _increment(pdf: bytes, mutate: Callable[[IncrementalPdfFileWriter], None]) -> bytes:
    w = IncrementalPdfFileWriter(io.BytesIO(pdf))
    mutate(w)
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def _dss(w):
    return w.root["/DSS"]


def _vri_entry(w):
    (key, ref), = _dss(w)["/VRI"].items()
    return key, ref


def _seal(report):
    sig = report.signatures[-1]
    assert sig.signer.common_name != "Nguyễn Văn A"
    return sig


def _accepted(pdf, offline):
    report = verify_pdf(pdf, offline)
    for sig in report.signatures:
        assert sig.reason != "MODIFIED_AFTER_SIGNING", sig.errors
    sig = _seal(report)
    assert sig.modification_level == "LTA_UPDATES"
    assert "LTV_UPDATE_TOLERATED" in {w["code"] for w in sig.warnings}
    return report


def _refused(pdf, offline):
    report = verify_pdf(pdf, offline)
    sig = _seal(report)
    assert sig.reason == "MODIFIED_AFTER_SIGNING"
    assert sig.verdict.value == "invalid"


def _replace_whole_dss(w):
    old = _dss(w)
    vri = D({N("/Type"): N("/VRI")})
    for key, ref in old["/VRI"].items():
        entry = ref.get_object()
        vri[N(key)] = w.add_object(D({N("/Type"): N("/VRI"), N("/Cert"): A(entry["/Cert"])}))
    new = D({N("/Type"): N("/DSS"), N("/Certs"): w.add_object(A(old["/Certs"])),
             N("/OCSPs"): A(old["/OCSPs"]), N("/CRLs"): A(old["/CRLs"]),
             N("/VRI"): w.add_object(vri)})
    w.root[N("/DSS")] = w.add_object(new)
    w.update_root()


def _drop_vri(w):
    dss = _dss(w)
    del dss["/VRI"]
    w.update_container(dss)


def _type_in_vri_dictionary(w):
    dss = _dss(w)
    dss["/VRI"][N("/Type")] = N("/VRI")
    w.update_container(dss)


def _rewrite_vri_entry_in_place(w):
    _, ref = _vri_entry(w)
    entry = ref.get_object()
    entry[N("/TU")] = generic.pdf_date(datetime.datetime.now(datetime.UTC))
    w.update_container(entry)


def _merge_vri_entry(w):
    dss = _dss(w)
    key, ref = _vri_entry(w)
    entry = ref.get_object()
    dss["/VRI"][N(key)] = D({N("/Type"): N("/VRI"), N("/Cert"): A(entry["/Cert"]),
                            N("/OCSP"): A(entry["/OCSP"]), N("/CRL"): A(dss["/CRLs"])})
    w.update_container(dss)


@pytest.mark.parametrize("mutate", [_replace_whole_dss, _drop_vri, _type_in_vri_dictionary,
                                    _rewrite_vri_entry_in_place, _merge_vri_entry])
def test_dss_vri_rewrites_are_lta_updates_iso32000_12_8_4(base, offline, mutate):
    """ISO 32000-2 §12.8.4.3-4 / EN 319 142-1 §5.4.2-3: DSS and VRI hold validation data only;
    replacing, rewriting, merging or dropping it changes no document content."""
    _accepted(_increment(base, mutate), offline)


def test_dss_with_a_new_der_certificate_stream(base, offline, test_pki):
    """A new /Certs stream holding a DER certificate, in a DSS replaced by a new dictionary."""
    def mutate(w):
        _replace_whole_dss(w)
        certs = w.root["/DSS"]["/Certs"]
        certs.append(w.add_object(generic.StreamObject(stream_data=test_pki.root_cert.dump())))
    _accepted(_increment(base, mutate), offline)


# -- near misses: still modifications ---------------------------------------------------------

def _page_ref(w):
    return w.root["/Pages"]["/Kids"][0]


def _unexpected_key(w):
    dss = _dss(w)
    dss[N("/Foo")] = generic.NumberObject(1)
    w.update_container(dss)


def _vri_entry_is_a_page(w):
    dss = _dss(w)
    dss["/VRI"][N("/" + "A" * 40)] = _page_ref(w)
    w.update_container(dss)


def _vri_cert_is_a_page(w):
    dss = _dss(w)
    dss["/VRI"][N("/" + "A" * 40)] = D({N("/Cert"): A([_page_ref(w)])})
    w.update_container(dss)


def _dss_stream_is_page_contents(w):
    """Overwrite the page's content stream in place and list it as a DSS certificate."""
    page = _page_ref(w).get_object()
    cref = page.raw_get("/Contents")
    dss = _dss(w)
    dss["/Certs"].append(cref)
    w.objects[(cref.generation, cref.idnum)] = generic.StreamObject(
        stream_data=b"0 0 m 500 500 l S")
    w.update_container(dss)


def _new_dss_stream_not_der(w):
    dss = _dss(w)
    dss["/Certs"].append(w.add_object(generic.StreamObject(stream_data=b"BT (x) Tj ET")))
    w.update_container(dss)


def _dss_stream_with_form_keys(w, test_pki):
    box = A([generic.NumberObject(v) for v in (0, 0, 9, 9)])
    stream = generic.StreamObject({N("/Subtype"): N("/Form"), N("/BBox"): box},
                                  stream_data=test_pki.root_cert.dump())
    dss = _dss(w)
    dss["/Certs"].append(w.add_object(stream))
    w.update_container(dss)


@pytest.mark.parametrize("mutate", [_unexpected_key, _vri_entry_is_a_page, _vri_cert_is_a_page,
                                    _dss_stream_is_page_contents, _new_dss_stream_not_der])
def test_non_validation_data_in_dss_is_still_a_modification(base, offline, mutate):
    """ISO 32000-2 Tables 261-262: only the listed keys and DER streams; an object also used as
    page content stays a change (its page use is not explained by the DSS)."""
    _refused(_increment(base, mutate), offline)


def test_dss_stream_with_xobject_keys_is_a_modification(base, offline, test_pki):
    """A DSS stream carrying Form XObject keys (drawable) is not validation data."""
    _refused(_increment(base, lambda w: _dss_stream_with_form_keys(w, test_pki)), offline)


def test_dss_deleted_is_a_modification(base, offline):
    def mutate(w):
        del w.root["/DSS"]
        w.update_root()
    _refused(_increment(base, mutate), offline)
