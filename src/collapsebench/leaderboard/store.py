"""Images published by content: one file per distinct source file, however many pages show it.

A model that draws the same picture for many prompts (the floor baseline draws
three pictures for 225 jobs), or two models that return byte-identical images,
must not make the site carry the same bytes again and again. Every image is
named after the SHA-256 of its source file, so identical sources map to one
published file.

The full-size file is a lossless WebP of the source PNG: the same pixels, about
a quarter smaller, and every browser the site targets shows it. Sources that
lossless WebP cannot hold exactly (16-bit or other unusual modes, sides over
WebP's limit) are published as the original bytes. Thumbnails are small lossy
WebPs, for the grids only; a click always opens the full-size file.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from collapsebench.core.errors import BenchError
from collapsebench.core.io import sha256_file

THUMB_SIDE = 320  # the grids show 240 px; 320 keeps thumbnails sharp on 1.3x screens
THUMB_QUALITY = 80
NAME_HEX = 24  # 96 bits of the SHA-256: collisions are out of reach for any plausible site
WEBP_MODES = frozenset({"RGB", "RGBA"})  # modes lossless WebP stores exactly
WEBP_MAX_SIDE = 16383


@dataclass(frozen=True)
class Published:
    """Where one source image lives in the site (paths relative to the site root) and its thumbnail's size."""

    sha256: str
    full: str
    thumb: str
    width: int
    height: int


class ImageStore:
    """Publishes images into `out/images` and `out/thumbs`, each distinct source once."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self._published: dict[str, Published] = {}

    def __len__(self) -> int:
        return len(self._published)

    def publish(self, source: Path) -> Published:
        """The published copy of `source` (made on first sight of its content, reused afterwards)."""
        digest = sha256_file(source)
        if digest not in self._published:
            self._published[digest] = self._write(Path(source), digest)
        return self._published[digest]

    def _write(self, source: Path, digest: str) -> Published:
        name = digest[:NAME_HEX]
        (self.out / "images").mkdir(parents=True, exist_ok=True)
        (self.out / "thumbs").mkdir(parents=True, exist_ok=True)
        try:
            with Image.open(source) as image:
                image.load()
                full = self._write_full(source, image, name)
                small = image.convert("RGB")
        except OSError as error:
            raise BenchError(f"{source}: cannot decode image for the site ({error})") from error
        small.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.LANCZOS)
        thumb = f"thumbs/{name}.webp"
        small.save(self.out / thumb, format="WEBP", quality=THUMB_QUALITY, method=4)
        return Published(digest, full, thumb, small.width, small.height)

    def _write_full(self, source: Path, image: Image.Image, name: str) -> str:
        """Lossless WebP when it holds the pixels exactly, else the source's own bytes."""
        if image.mode in WEBP_MODES and max(image.size) <= WEBP_MAX_SIDE:
            full = f"images/{name}.webp"
            # method 0 is the fastest encoder; quality 100 spends that time on a smaller file (lossless either way);
            # exact keeps the colour under fully transparent pixels.
            image.save(self.out / full, format="WEBP", lossless=True, quality=100, method=0, exact=True)
            return full
        full = f"images/{name}{source.suffix.lower()}"
        shutil.copyfile(source, self.out / full)
        return full
