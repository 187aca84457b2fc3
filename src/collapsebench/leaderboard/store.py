"""Images published by content: one file per distinct source file, however many pages show it.

A model that draws the same picture for many prompts (the floor baseline draws
three pictures for 225 jobs), or two models that return byte-identical images,
must not make the site carry the same bytes again and again. Every image is
named after the SHA-256 of its source file, so identical sources map to one
published file.

Pages show resized WebPs through `srcset` (240 px wide for the grids, 480 px
for sharp screens, when the source is that wide), so a phone downloads only
what it draws. A click opens the full-size file: a WebP at quality 90 at the
source's own resolution. It is not the PNG bit for bit (lossless copies made
the default site 40 MB, 32 MB of it images); the exact PNG, whose SHA-256 the
manifest records, is in the results remote (`dvc pull`). Sources WebP cannot
hold (16-bit or other unusual modes, sides over WebP's limit) are published as
their original bytes.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from collapsebench.core.errors import BenchError
from collapsebench.core.io import sha256_file

VARIANT_WIDTHS = (240, 480)  # the grids draw 240 px; 480 for 2x screens
THUMB_QUALITY = 78
FULL_QUALITY = 90
OVERSIZE = 1.25  # a variant is made only when the source is this much wider (else the full file serves)
NAME_HEX = 24  # 96 bits of the SHA-256: collisions are out of reach for any plausible site
WEBP_MODES = frozenset({"RGB", "RGBA"})  # modes lossless WebP stores exactly
WEBP_MAX_SIDE = 16383


@dataclass(frozen=True)
class Published:
    """Where one source image lives in the site (paths relative to the site root), its smallest variant's size
    (what `width`/`height` attributes reserve) and every variant with its width, for `srcset`."""

    sha256: str
    full: str
    thumb: str
    width: int
    height: int
    variants: tuple[tuple[str, int], ...] = ()


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
                rgb = image.convert("RGB")
        except OSError as error:
            raise BenchError(f"{source}: cannot decode image for the site ({error})") from error
        variants = []
        for width in VARIANT_WIDTHS:
            if rgb.width < width * OVERSIZE and variants:
                break  # the full-size file is hardly larger: it serves as the next variant
            small = rgb.copy()
            small.thumbnail((width, round(width * rgb.height / rgb.width) or 1), Image.LANCZOS)
            href = f"thumbs/{name}-{width}.webp"
            small.save(self.out / href, format="WEBP", quality=THUMB_QUALITY, method=4)
            variants.append((href, small.width))
        if full.endswith(".webp") and rgb.width > variants[-1][1]:
            variants.append((full, rgb.width))
        first = variants[0][1]
        return Published(digest, full, variants[0][0], first, max(1, round(first * rgb.height / rgb.width)),
                         tuple(variants))

    def _write_full(self, source: Path, image: Image.Image, name: str) -> str:
        """A quality-90 WebP at full resolution when WebP can hold the image, else the source's own bytes."""
        if image.mode in WEBP_MODES and max(image.size) <= WEBP_MAX_SIDE:
            full = f"images/{name}.webp"
            image.save(self.out / full, format="WEBP", quality=FULL_QUALITY, method=4)
            return full
        full = f"images/{name}{source.suffix.lower()}"
        shutil.copyfile(source, self.out / full)
        return full
