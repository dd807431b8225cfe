"""Size bounds applied while parsing untrusted edXML."""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds for one parse. Defaults suit the national axis (documents of tens of MB).

    - ``max_document_size``: bytes of the whole .edxml file.
    - ``max_attachments``: number of ``Attachment`` (and of manifest ``Reference``) elements.
    - ``max_attachment_size``: decoded bytes of one attachment, after unzipping.
    - ``max_total_attachment_size``: decoded bytes of all attachments together.
    - ``max_zip_ratio``: uncompressed / compressed size of a zipped attachment.
    - ``max_text_length``: characters of any other element text (Subject, Content…).
    """

    max_document_size: int = 100 * MiB
    max_attachments: int = 50
    max_attachment_size: int = 50 * MiB
    max_total_attachment_size: int = 200 * MiB
    max_zip_ratio: float = 100.0
    max_text_length: int = 1 * MiB


DEFAULT_LIMITS = Limits()
