"""Visible appearances of Decree 30/2020 signatures (Appendix I) and where they go on the page.

Rules implemented here (every size is a default of :class:`AppearanceLayout`, to configure):

* Competent person: image of the handwritten signature, blue PNG with transparent background,
  placed between the position line and the name (by box; automatically on the last page, right
  column). Optional caption lines (competence, position above; name below the image).
* Agency: image of the seal, red PNG with transparent background, at real size (36 mm), covering
  about 1/3 of the competent person's signature image, on the left.
* Attachment and copy: no image; a text block at the top right of page 1 in Times New Roman
  (metric-compatible Liberation Serif) 10 pt, upright, black: number/notation (or copy form and
  copying agency) and the signing time in ISO 8601 with the Vietnam offset (+07:00).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from PIL import Image
from pyhanko.pdf_utils import layout
from pyhanko.pdf_utils.images import PdfImage
from pyhanko.pdf_utils.text import TextBox, TextBoxStyle
from pyhanko.stamp.base import BaseStamp, BaseStampStyle

from signing.errors import SigningError
from signing.fonts import EmbeddedFontFactory, font_metrics

ASSETS = Path(__file__).parent / "assets"
DEMO_SIGNATURE_PNG = ASSETS / "demo-signature-blue.png"
DEMO_SEAL_PNG = ASSETS / "demo-seal-red.png"

#: Vietnam time (no daylight saving): ISO 8601 times are written with +07:00.
VIETNAM_TZ = timezone(timedelta(hours=7), "ICT")
MM = 72 / 25.4

ATTACHMENT_TEMPLATE = "Số: {number}\nThời gian ký: {time}"
COPY_TEMPLATE = "{copy_form}\n{agency}\nThời gian ký: {time}"


class AppearanceError(SigningError):
    """The appearance cannot be built (unreadable image, text without glyphs, bad box)."""

    code = "APPEARANCE"


def vietnam_time(moment: datetime | None = None) -> datetime:
    """``moment`` (default: now) in Vietnam time, to the second."""
    moment = moment or datetime.now(VIETNAM_TZ)
    return moment.astimezone(VIETNAM_TZ).replace(microsecond=0)


def iso_vietnam(moment: datetime) -> str:
    """ISO 8601 with the +07:00 offset, e.g. ``2024-05-20T09:15:30+07:00``."""
    return vietnam_time(moment).isoformat(timespec="seconds")


@dataclass(frozen=True)
class AppearanceLayout:
    """Layout defaults (points); keep them in configuration."""

    signature_width: float = 150.0
    signature_height: float = 60.0
    seal_diameter: float = 36 * MM
    seal_overlap: float = 1 / 3  # share of the signature image the seal covers, from the left
    text_size: int = 10
    text_leading: int = 12
    text_margin_top: float = 20 * MM / 2  # 10 mm from the page's top edge
    text_margin_right: float = 15 * MM / 2
    text_padding: float = 2.0
    caption_size: int = 10


DEFAULT_LAYOUT = AppearanceLayout()


def load_png(data: bytes | Path | None, default: Path) -> Image.Image:
    """Open an image (bytes or path, default: a demo asset) as RGBA so transparency survives."""
    try:
        if data is None:
            data = default
        img = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
        img.load()
    except (OSError, ValueError) as exc:
        raise AppearanceError(f"cannot read stamp image: {exc}") from exc
    return img.convert("RGBA") if img.mode != "RGBA" else img


def check_glyphs(text: str) -> None:
    """Refuse text the stamp font cannot draw (it would show as empty boxes)."""
    metrics = font_metrics()
    if not metrics.has_glyphs(text):
        missing = sorted({c for c in text if not c.isspace() and ord(c) not in metrics.advances})
        raise AppearanceError(f"stamp font has no glyphs for {''.join(missing)!r}")


def text_block_size(lines: list[str], layout_: AppearanceLayout = DEFAULT_LAYOUT):
    """(width, height) in points of a text block at the layout's text size, with padding."""
    metrics = font_metrics()
    width = max(metrics.text_width(line, layout_.text_size) for line in lines)
    height = layout_.text_leading * (len(lines) - 1) + layout_.text_size * 1.25
    pad = 2 * layout_.text_padding
    return width + pad, height + pad


@dataclass(frozen=True)
class Decree30StampStyle(BaseStampStyle):
    """A stamp made of an optional image and optional text lines above and below it.

    The image is scaled (aspect kept) into the space the text leaves; text is never scaled, so
    its width on the page is the font's width at ``font_size``.
    """

    border_width: int = 0
    background_opacity: float = 1.0
    image: Image.Image | None = None
    lines_above: tuple[str, ...] = ()
    lines_below: tuple[str, ...] = ()
    font_size: int = 10
    leading: int = 12
    padding: float = 2.0
    text_align: str = "left"  # left | center
    text_color: tuple[float, float, float] = (0.0, 0.0, 0.0)
    font: EmbeddedFontFactory = field(default_factory=EmbeddedFontFactory)

    def create_stamp(self, writer, box: layout.BoxConstraints, text_params: dict):
        return Decree30Stamp(writer=writer, style=self, box=box)


class Decree30Stamp(BaseStamp):
    """Renders a :class:`Decree30StampStyle` into a field's appearance stream."""

    def _text(self, lines: tuple[str, ...], font_name: str):
        st: Decree30StampStyle = self.style
        style = TextBoxStyle(
            font=st.font,
            font_size=st.font_size,
            leading=st.leading,
            text_color=st.text_color,
            box_layout_rule=layout.SimpleBoxLayoutRule(
                x_align=layout.AxisAlignment.ALIGN_MIN,
                y_align=layout.AxisAlignment.ALIGN_MIN,
                margins=layout.Margins.uniform(0),
            ),
        )
        tb = TextBox(style, writer=self.writer, resources=self.resources, font_name=font_name)
        tb.content = "\n".join(lines)
        commands = tb.render()
        return commands, tb.box.width, tb.box.height

    def _render_inner_content(self):
        st: Decree30StampStyle = self.style
        width, height, pad = self.box.width, self.box.height, st.padding
        out = []

        def place(commands: bytes, w: float, y: float):
            x = pad if st.text_align == "left" else max(pad, (width - w) / 2)
            out.append(b"q 1 0 0 1 %g %g cm %s Q" % (x, y, commands))

        top, bottom = height - pad, pad
        if st.lines_above:
            cmds, w, h = self._text(st.lines_above, "F1")
            top -= h
            place(cmds, w, top)
        if st.lines_below:
            cmds, w, h = self._text(st.lines_below, "F2")
            place(cmds, w, bottom)
            bottom += h
        if st.image is not None and top > bottom:
            img = PdfImage(st.image, writer=self.writer)
            iw, ih = st.image.size
            scale = min((width - 2 * pad) / iw, (top - bottom) / ih)
            w, h = iw * scale, ih * scale
            img.box = layout.BoxConstraints(w, h)
            x, y = (width - w) / 2, bottom + (top - bottom - h) / 2
            out.append(b"q 1 0 0 1 %g %g cm %s Q" % (x, y, img.render()))
            self.import_resources(img.resources)
        return out


def competent_person_style(
    image: bytes | Path | None = None,
    *,
    competence: str | None = None,
    position: str | None = None,
    name: str | None = None,
) -> Decree30StampStyle:
    """Blue handwritten signature, with optional competence/position above and name below."""
    above = tuple(t for t in (competence, position) if t)
    below = (name,) if name else ()
    for line in above + below:
        check_glyphs(line)
    return Decree30StampStyle(
        image=load_png(image, DEMO_SIGNATURE_PNG),
        lines_above=above,
        lines_below=below,
        text_align="center",
    )


def seal_style(image: bytes | Path | None = None) -> Decree30StampStyle:
    """Red agency seal, image only."""
    return Decree30StampStyle(image=load_png(image, DEMO_SEAL_PNG), padding=0.0)


def text_block_style(lines: list[str], layout_: AppearanceLayout = DEFAULT_LAYOUT):
    """Black Times 10 pt text block (attachment / copy), no image, no border."""
    for line in lines:
        check_glyphs(line)
    return Decree30StampStyle(
        lines_above=tuple(lines),
        font_size=layout_.text_size,
        leading=layout_.text_leading,
        padding=layout_.text_padding,
    )


Box = tuple[float, float, float, float]


def auto_signature_box(page_box: Box, layout_: AppearanceLayout = DEFAULT_LAYOUT) -> Box:
    """Default competent-person box: right column of the page, 150 pt above the bottom edge."""
    x0, y0, x1, _ = page_box
    cx = x0 + (x1 - x0) * 0.72
    w, h = layout_.signature_width, layout_.signature_height
    return (cx - w / 2, y0 + 150, cx + w / 2, y0 + 150 + h)


def seal_box(signature_box: Box, layout_: AppearanceLayout = DEFAULT_LAYOUT) -> Box:
    """Seal at real size whose right part covers the left third of the signature image."""
    sx0, sy0, sx1, sy1 = signature_box
    d = layout_.seal_diameter
    right = sx0 + (sx1 - sx0) * layout_.seal_overlap
    cy = (sy0 + sy1) / 2
    return (right - d, cy - d / 2, right, cy + d / 2)


def top_right_box(page_box: Box, lines: list[str], layout_: AppearanceLayout = DEFAULT_LAYOUT):
    """Text block box at the top right of the page, sized for Times ``text_size`` pt."""
    w, h = text_block_size(lines, layout_)
    _, _, x1, y1 = page_box
    right, top = x1 - layout_.text_margin_right, y1 - layout_.text_margin_top
    return (right - w, top - h, right, top)


def overlaps(a: Box, b: Box) -> bool:
    """Whether two boxes share area (touching edges do not)."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def stacked_below(box: Box, taken: list[Box], page_box: Box,
                  layout_: AppearanceLayout = DEFAULT_LAYOUT) -> Box | None:
    """``box`` moved down, one text line's leading below every box of ``taken`` it would
    overlap, until it overlaps none (Decree 30 Appendix I: the attachment and copy stamps share
    the top right of page 1, the later one under the earlier and under the number/date fields).
    None when it does not fit inside the page: wider than the page allows (left margin as the
    right one) or no longer above the page's bottom margin."""
    x0, y0, x1, y1 = box
    height, bottom = y1 - y0, page_box[1] + layout_.text_margin_top
    if x0 < page_box[0] + layout_.text_margin_right or y0 < bottom:
        return None
    while hits := [t for t in taken if overlaps((x0, y0, x1, y1), t)]:
        y1 = min(t[1] for t in hits) - layout_.text_leading
        y0 = y1 - height
        if y0 < bottom:
            return None
    return (x0, y0, x1, y1)
