"""Regenerate the demo stamp images (``python -m signing.assets.make_demo_images``).

* ``demo-signature-blue.png``: a handwritten-looking signature, blue, transparent background.
* ``demo-seal-red.png``: a round agency seal, red, transparent background (drawn at 36 mm).

They are throw-away demo art for tests and the demo, not any agency's real seal.
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).parent
BLUE = (20, 40, 200, 255)
RED = (220, 20, 30, 255)


def signature(path: Path = HERE / "demo-signature-blue.png") -> None:
    w, h = 600, 240
    img = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    pts = []
    for i in range(400):
        t = i / 399
        x = 40 + 520 * t
        y = 120 + 70 * math.sin(t * 14) * (1 - t) + 25 * math.sin(t * 41)
        pts.append((x, y))
    d.line(pts, fill=BLUE, width=9, joint="curve")
    d.line([(90, 190), (520, 165)], fill=BLUE, width=7)
    img.save(path, optimize=True)


def seal(path: Path = HERE / "demo-seal-red.png") -> None:
    size = 420
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    c = size / 2
    for r, wd in ((200, 14), (150, 7)):
        d.ellipse((c - r, c - r, c + r, c + r), outline=RED, width=wd)
    star = []
    for k in range(10):
        r = 80 if k % 2 == 0 else 32
        a = -math.pi / 2 + k * math.pi / 5
        star.append((c + r * math.cos(a), c + r * math.sin(a)))
    d.polygon(star, fill=RED)
    for k in range(36):  # dotted lettering ring
        a = k * 2 * math.pi / 36
        x, y = c + 175 * math.cos(a), c + 175 * math.sin(a)
        d.rectangle((x - 7, y - 7, x + 7, y + 7), fill=RED)
    img.save(path, optimize=True)


if __name__ == "__main__":
    signature()
    seal()
