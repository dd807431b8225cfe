"""edXML codec (QCVN 102:2016): pure, no I/O, imports only the stdlib and lxml.

- :func:`parse` / :func:`parse_edoc` / :func:`parse_status`: bytes to typed models, hardened.
- :func:`build`: model to canonical bytes; ``parse(build(m)) == m``.
- :func:`append_trace_header`: add one hop without re-encoding attachments.
- :func:`to_json`: JSON-safe summary; :func:`validate_xsd`: check against our XSD.
"""

from .builder import build, build_edoc, build_status
from .dates import VIETNAM_TZ, format_date, format_timestamp, parse_date, parse_timestamp
from .errors import (
    EdxmlAttachmentError,
    EdxmlBuildError,
    EdxmlError,
    EdxmlLimitError,
    EdxmlPolicyError,
    EdxmlSchemaError,
    EdxmlSecurityError,
    EdxmlStructureError,
    EdxmlSyntaxError,
    EdxmlValueError,
)
from .jsonview import from_json, to_json
from .limits import DEFAULT_LIMITS, Limits
from .model import (
    EDXML_NS,
    Attachment,
    Bussiness,
    BussinessDocType,
    BussinessDocumentInfo,
    Code,
    DocumentType,
    EdocMessage,
    Organ,
    OtherInfo,
    PromulgationInfo,
    Receiver,
    ReplacementInfo,
    ResponseFor,
    SignerInfo,
    StaffInfo,
    StatusCode,
    StatusMessage,
    TraceHeader,
)
from .parser import parse, parse_edoc, parse_status
from .trace import append_trace_header
from .xsd import validate_xsd

__all__ = [
    "DEFAULT_LIMITS", "EDXML_NS", "VIETNAM_TZ", "Attachment", "Bussiness", "BussinessDocType",
    "BussinessDocumentInfo", "Code", "DocumentType", "EdocMessage", "EdxmlAttachmentError",
    "EdxmlBuildError", "EdxmlError", "EdxmlLimitError", "EdxmlPolicyError", "EdxmlSchemaError",
    "EdxmlSecurityError", "EdxmlStructureError", "EdxmlSyntaxError", "EdxmlValueError", "Limits",
    "Organ", "OtherInfo", "PromulgationInfo", "Receiver", "ReplacementInfo", "ResponseFor",
    "SignerInfo", "StaffInfo", "StatusCode", "StatusMessage", "TraceHeader",
    "append_trace_header", "build", "build_edoc", "build_status", "format_date",
    "format_timestamp", "from_json", "parse", "parse_date", "parse_edoc", "parse_status",
    "parse_timestamp",
    "to_json", "validate_xsd",
]
