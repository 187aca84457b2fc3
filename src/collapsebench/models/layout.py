"""Grid layout shared by the calibration adapters that paste references into one canvas."""

from __future__ import annotations

import math

from PIL import Image


def tile(images: list[Image.Image], size: int, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Paste `images` into a near-square grid on a `size` x `size` canvas, each cell filled edge to edge."""
    columns = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    canvas = Image.new("RGB", (size, size), background)
    cell_w, cell_h = size // columns, size // rows
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        canvas.paste(_cover(image, cell_w, cell_h), (column * cell_w, row * cell_h))
    return canvas


def _cover(image: Image.Image, width: int, height: int) -> Image.Image:
    """Scale to cover width x height, then center-crop (no letterboxing, no distortion)."""
    scale = max(width / image.width, height / image.height)
    resized = image.resize((max(width, round(image.width * scale)), max(height, round(image.height * scale))), Image.BICUBIC)
    left, top = (resized.width - width) // 2, (resized.height - height) // 2
    return resized.crop((left, top, left + width, top + height))
