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
* Font work is done once per process, not once per signature (:class:`CachedGlyphAccumulator`):
  the parsed font and the HarfBuzz face are shared, and every embedded subset contains the whole
  :data:`REPERTOIRE` (printable ASCII and the Vietnamese alphabet) plus whatever else the text
  used, so the subset, keyed by the glyphs outside the repertoire, is built and compressed once
  and reused: the digits of a signing time or a document number never make a new one.
  Subsets carry no TrueType hinting (PDF viewers rasterise without it); that keeps the
  repertoire subset (~9 KB) as small as a hinted subset of one stamp's 40 glyphs.
* Within one revision, stamps with the same font and size share one embedded font.
"""

from __future__ import annotations

import functools
import io
import os
import unicodedata
import weakref
import zlib
from dataclasses import dataclass
from pathlib import Path

import uharfbuzz as hb
from fontTools import subset
from fontTools.ttLib import TTFont
from fontTools.ttLib.scaleUpem import scale_upem
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.font.api import FontEngine, FontEngineFactory
from pyhanko.pdf_utils.font.opentype import CIDFontType2, GlyphAccumulator, _read_ps_name
from pyhanko.pdf_utils.generic import pdf_name

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


def _vietnamese_letters() -> str:
    """The Vietnamese alphabet, lower and upper case, every vowel with each of the five tones."""
    vowels = ["a", "a\u0306", "a\u0302", "e", "e\u0302", "i", "o", "o\u0302", "o\u031b", "u",
              "u\u031b", "y"]  # fmt: skip
    tones = ["", "\u0300", "\u0301", "\u0303", "\u0309", "\u0323"]
    letters = {unicodedata.normalize("NFC", v + t) for v in vowels for t in tones} | {"đ"}
    letters |= {c.upper() for c in letters}
    return "".join(sorted(letters))


#: Characters whose glyphs every embedded subset carries (see the module docstring).
REPERTOIRE = "".join(map(chr, range(0x20, 0x7F))) + _vietnamese_letters() + "–—‘’“”…°"


@dataclass(frozen=True, eq=False)
class FontProgram:
    """A rescaled font parsed once per process; shared, read-only, by every accumulator."""

    path: str | None  # as given to font_program (None: the default font)
    data: bytes
    tt: TTFont
    hb_font: hb.Font
    ps_name: str
    repertoire: frozenset[int]  # glyph ids of REPERTOIRE


@functools.lru_cache(maxsize=8)
def font_program(path: str | None = None) -> FontProgram:
    """The parsed font at ``path`` (default font if None), with the tables pyHanko reads loaded
    up front (fontTools loads lazily, which is not safe to share between threads)."""
    data = rescaled_font_bytes(path)
    tt = TTFont(io.BytesIO(data))
    for tag in ("head", "hhea", "hmtx", "cmap", "name", "post", "OS/2", "maxp"):
        tt[tag]  # load now
    cmap = tt.getBestCmap()
    repertoire = frozenset(tt.getGlyphID(cmap[ord(c)]) for c in REPERTOIRE if ord(c) in cmap)
    hb_font = hb.Font(hb.Face(data))
    return FontProgram(path, data, tt, hb_font, _read_ps_name(tt), repertoire)


@functools.lru_cache(maxsize=64)
def subset_font_file(path: str | None, glyph_ids: frozenset[int]) -> bytes:
    """Flate-compressed TrueType program with ``glyph_ids`` (glyph ids kept: CID = GID), no
    hinting and no layout tables (text is shaped before embedding)."""
    font = TTFont(io.BytesIO(font_program(path).data))
    options = subset.Options(layout_closure=False, retain_gids=True, hinting=False)
    options.drop_tables += ["GPOS", "GDEF", "GSUB", "kern"]
    subsetter = subset.Subsetter(options=options)
    subsetter.populate(gids=sorted(glyph_ids))
    subsetter.subset(font)
    buf = io.BytesIO()
    font.save(buf)
    return zlib.compress(buf.getvalue(), 9)


class _CachedCIDFontType2(CIDFontType2):
    """CIDFontType2 whose /FontFile2 is a cached, already compressed subset."""

    font_file: bytes = b""

    def set_font_file(self, writer):
        stream = generic.StreamObject(
            {pdf_name("/Filter"): pdf_name("/FlateDecode")}, encoded_data=self.font_file
        )
        ref = writer.add_object(stream)
        self._font_descriptor[pdf_name("/FontFile2")] = ref
        return ref


class CachedGlyphAccumulator(GlyphAccumulator):
    """pyHanko's ``GlyphAccumulator`` (HarfBuzz shaping, CID-keyed TrueType embedding) on a
    shared :class:`FontProgram`, embedding a cached repertoire subset (:func:`subset_font_file`).

    Only the constructor and the font program embedding differ; shaping, widths (/W) and the
    ToUnicode map are pyHanko's, from the glyphs actually used.
    """

    def __init__(self, writer, program: FontProgram, font_size, obj_stream=None):
        # GlyphAccumulator.__init__ would parse the font and build a HarfBuzz face per call
        self.program = program
        self.hb_font = program.hb_font
        self.tt = tt = program.tt
        FontEngine.__init__(
            self, writer, program.ps_name, embedded_subset=True, obj_stream=obj_stream,
            font_size=font_size,
        )  # fmt: skip
        self._font_ref = writer.allocate_placeholder()
        self.cff_charset = None
        self.use_raw_gids = True
        self.cidfont_obj = _CachedCIDFontType2(tt, program.ps_name, self.subset_prefix)
        self.features = None
        self.units_per_em = tt["head"].unitsPerEm
        self._glyphs: dict[int, tuple[int, int]] = {}
        self._glyph_set = tt.getGlyphSet(preferCFF=True)
        self._cid_to_unicode: dict[int, str] = {}
        self._GlyphAccumulator__reverse_cmap = None
        self.ot_language_tag = self.ot_script_tag = None
        self.writing_direction = self.bcp47_lang_code = None
        self._subset_created = self._write_prepared = False

    def _extract_subset(self, options=None):
        """Never subset the shared font in place: pick (or build once) the cached subset."""
        program = self.program
        glyph_ids = program.repertoire | frozenset(self._glyphs)
        self.cidfont_obj.font_file = subset_font_file(program.path, glyph_ids)


_ENGINES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class EmbeddedFontFactory(FontEngineFactory):
    """pyHanko font engine factory embedding a subset of the rescaled font.

    Unlike pyHanko's ``GlyphAccumulatorFactory`` it reads the font from memory (the 1000-upem
    program never touches the disk), parses it once per process, and hands out one
    :class:`CachedGlyphAccumulator` per writer, font and size, so that every stamp and form
    field of a revision shares one embedded font.
    """

    font_path: str | None = None
    font_size: int = 10

    def create_font_engine(self, writer, obj_stream=None) -> GlyphAccumulator:
        engines = _ENGINES.setdefault(writer, {})
        key = (self.font_path, self.font_size)
        engine = engines.get(key)
        if engine is None or engine._write_prepared:
            if obj_stream is None and writer.stream_xrefs:
                obj_stream = writer.prepare_object_stream()
            engine = CachedGlyphAccumulator(
                writer, font_program(self.font_path), self.font_size, obj_stream
            )
            engines[key] = engine
        return engine


def warm_up(path: str | None = None) -> None:
    """Rescale, parse and subset the stamp font now (about 1 s, once per process), so that the
    first visible signature of a worker costs no more than the next ones."""
    program = font_program(path)
    subset_font_file(path, program.repertoire)
    font_metrics(path)
