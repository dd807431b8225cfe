"""``validate_xsd``: check a message against our XSD (``schemas/edxml/``).

Not on the hot path of :func:`parse` (which checks structure while extracting); used by tests,
the CLI (``edxml parse --xsd``) and integrators. Payloads are cut out first (see
:mod:`.payload`), so validating a 50 MB message costs about as much as a small one.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from lxml import etree

from .errors import EdxmlSchemaError
from .limits import DEFAULT_LIMITS, Limits
from .loader import load
from .model import EDXML_NS

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas" / "edxml"
_INDEX = re.compile(r"\[1\]")


@functools.lru_cache(maxsize=4)
def _schema(kind: str, directory: str) -> etree.XMLSchema:
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.XMLSchema(etree.parse(str(Path(directory) / f"edxml-{kind}.xsd"), parser))


def _local_path(path: str | None) -> str | None:
    """``/edXML:edXML/edXML:edXMLEnvelope[1]`` -> ``/edXML/edXMLEnvelope``."""
    if not path:
        return None
    parts = [p.split(":", 1)[-1] for p in path.split("/") if p]
    if parts and parts[0] == "*":  # libxml2 writes the default-namespace root as "*"
        parts[0] = "edXML"
    return _INDEX.sub("", "/" + "/".join(parts))


def validate_xsd(data: bytes, limits: Limits | None = None,
                 schema_dir: Path | None = None) -> str:
    """Validate; return the message kind (``"edoc"`` or ``"status"``) or raise
    :class:`EdxmlSchemaError` (code ``EDXML_SCHEMA_INVALID``) naming the first violation."""
    loaded = load(data, limits or DEFAULT_LIMITS)
    status = loaded.root.find(f".//{{{EDXML_NS}}}MessageHeader/{{{EDXML_NS}}}StatusCode")
    kind = "status" if status is not None else "edoc"
    schema = _schema(kind, str(schema_dir or SCHEMA_DIR))
    if not schema.validate(loaded.root.getroottree()):
        entry = schema.error_log[0]
        raise EdxmlSchemaError("EDXML_SCHEMA_INVALID",
                               f"{kind} schema: line {entry.line}: "
                               f"{entry.message.replace('{' + EDXML_NS + '}', '')}",
                               _local_path(entry.path))
    return kind
