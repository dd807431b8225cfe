"""Embedded fonts for signature appearances.

Rules implemented here:

* Stamp text of Decree 30 attachments and copies is Times New Roman, 10 pt, upright, black.
  Liberation Serif is metric-compatible with Times New Roman and is the default face.
* Vietnamese text needs an embedded font (the PDF standard Courier has no Vietnamese glyphs).
  Debian's ``fonts-liberation`` (1.07) has no Vietnamese letters (ố, ễ, ư ...), so Liberation
  Serif 2.1 (SIL OFL 1.1, with Vietnamese) ships in ``signing/assets/fonts``; it is the default.
* pyHanko lays out glyphs as if the font had 1000 units per em; TrueType faces with another
  ``unitsPerEm`` (Times New Roman, Liberation Serif, DejaVu: 2048) come out about 2x too wide.
  Every font is therefore rescaled to 1000 units per em with fontTools before use; the rescaled
  program is cached in memory per process (rescaling takes ~0.1 s).
"""

from __future__ import annotations

import functools
import io
import os
from dataclasses import dataclass
from pathlib import Path

from fontTools.ttLib import TTFont
from fontTools.ttLib.scaleUpem import scale_upem
from pyhanko.pdf_utils.font.api import FontEngineFactory
from pyhanko.pdf_utils.font.opentype import GlyphAccumulator

from signing.errors import SigningError

#: Units per em that pyHanko's layout code assumes.
PDF_UPEM = 1000

#: Candidate Times-metric faces, first existing one wins (override with EDOC_STAMP_FONT).
ASSET_FONT = Path(__file__).parent / "assets" / "fonts" / "LiberationSerif-Regular.ttf"
TIMES_CANDIDATES = (
    str(ASSET_FONT),
    "/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSerif-Regular.ttf",
    "/usr/share/fonts/truetype/msttcorefonts/Times_New_Roman.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
)


class FontNotFound(SigningError):
    """No usable stamp font was found on this machine."""

    code = "FONT_NOT_FOUND"


def default_font_path() -> Path:
    """Return the stamp font: ``$EDOC_STAMP_FONT`` or the first Times-metric face installed."""
    env = os.environ.get("EDOC_STAMP_FONT")
    if env:
        if not Path(env).is_file():
            raise FontNotFound(f"EDOC_STAMP_FONT={env} is not a file")
        return Path(env)
    for candidate in TIMES_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    raise FontNotFound(
        "no Times-metric font found; install fonts-liberation or set EDOC_STAMP_FONT"
    )


@functools.lru_cache(maxsize=8)
def rescaled_font_bytes(path: str | None = None) -> bytes:
    """The font program at ``path`` (default: :func:`default_font_path`) at 1000 units per em."""
    font = TTFont(path or str(default_font_path()))
    if font["head"].unitsPerEm != PDF_UPEM:
        scale_upem(font, PDF_UPEM)
    for tag in ("FFTM", "DSIG"):  # not subsettable / invalid after rescaling
        if tag in font:
            del font[tag]
    buf = io.BytesIO()
    font.save(buf)
    return buf.getvalue()


@dataclass(frozen=True)
class FontMetrics:
    """Advance widths (in 1/1000 em) of a rescaled font, for sizing stamp boxes."""

    advances: dict[int, int]
    missing: int
    ascent: int
    descent: int

    def text_width(self, text: str, size: float) -> float:
        """Width in points of ``text`` set at ``size`` points (no kerning)."""
        units = sum(self.advances.get(ord(ch), self.missing) for ch in text)
        return units * size / PDF_UPEM

    def has_glyphs(self, text: str) -> bool:
        """True when every non-space character of ``text`` has a glyph (Vietnamese check)."""
        return all(ord(ch) in self.advances for ch in text if not ch.isspace())


@functools.lru_cache(maxsize=8)
def font_metrics(path: str | None = None) -> FontMetrics:
    """Character advance widths of the rescaled font."""
    font = TTFont(io.BytesIO(rescaled_font_bytes(path)))
    hmtx = font["hmtx"]
    cmap = font.getBestCmap()
    advances = {cp: hmtx[name][0] for cp, name in cmap.items()}
    hhea = font["hhea"]
    return FontMetrics(
        advances=advances,
        missing=hmtx[".notdef"][0] if ".notdef" in hmtx.metrics else 500,
        ascent=hhea.ascent,
        descent=hhea.descent,
    )


@dataclass(frozen=True)
class EmbeddedFontFactory(FontEngineFactory):
    """pyHanko font engine factory embedding a subset of the rescaled font.

    Unlike pyHanko's ``GlyphAccumulatorFactory`` it reads the font from memory, so the
    1000-upem program never touches the disk.
    """

    font_path: str | None = None
    font_size: int = 10

    def create_font_engine(self, writer, obj_stream=None) -> GlyphAccumulator:
        if obj_stream is None and writer.stream_xrefs:
            obj_stream = writer.prepare_object_stream()
        return GlyphAccumulator(
            writer=writer,
            font_handle=io.BytesIO(rescaled_font_bytes(self.font_path)),
            font_size=self.font_size,
            obj_stream=obj_stream,
        )
