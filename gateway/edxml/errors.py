"""Errors raised by the edXML codec.

Every error carries a machine-readable ``code`` (``EDXML_*``), a human ``message`` and,
when it concerns one element, the ``path`` of that element written with local names
(``/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/From/OrganId``; repeated elements get a
1-based index, ``To[2]``).
"""

from __future__ import annotations


class EdxmlError(Exception):
    """Base class of every codec error."""

    default_code = "EDXML_ERROR"

    def __init__(self, code: str | None, message: str, path: str | None = None) -> None:
        self.code = code or self.default_code
        self.message = message
        self.path = path
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f" at {self.path}" if self.path else ""
        return f"{self.code}: {self.message}{where}"

    def to_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "path": self.path}


class EdxmlSyntaxError(EdxmlError):
    """Not a well-formed UTF-8 XML document (EDXML_NOT_WELL_FORMED, EDXML_ENCODING, EDXML_EMPTY)."""

    default_code = "EDXML_NOT_WELL_FORMED"


class EdxmlSecurityError(EdxmlError):
    """Hostile constructs: any DOCTYPE (EDXML_DTD_FORBIDDEN), entity declarations/references."""

    default_code = "EDXML_DTD_FORBIDDEN"


class EdxmlLimitError(EdxmlError):
    """A size bound of :class:`~gateway.edxml.limits.Limits` was exceeded."""

    default_code = "EDXML_LIMIT_EXCEEDED"


class EdxmlStructureError(EdxmlError):
    """Wrong root/namespace, a missing or duplicated element."""

    default_code = "EDXML_MISSING_ELEMENT"


class EdxmlValueError(EdxmlError):
    """An element is present but its text is not acceptable (date, integer, status code…)."""

    default_code = "EDXML_BAD_VALUE"


class EdxmlAttachmentError(EdxmlError):
    """Attachment defects: base64, zip, manifest join, duplicate ContentId."""

    default_code = "EDXML_BAD_ATTACHMENT"


class EdxmlPolicyError(EdxmlError):
    """Well-formed but refused by policy: secret ("mật") documents may not travel the axis."""

    default_code = "EDXML_SECRET_DOCUMENT"


class EdxmlSchemaError(EdxmlError):
    """The document does not validate against our XSD (``validate_xsd``)."""

    default_code = "EDXML_SCHEMA_INVALID"


class EdxmlBuildError(EdxmlError):
    """A model cannot be serialised (missing required value, bad type)."""

    default_code = "EDXML_BUILD_INVALID"
