"""Checks on untrusted PNG bytes (results submissions), made before and while decoding.

The header is parsed by hand first so that an image whose declared size is
absurd (a decompression bomb) is rejected before Pillow allocates anything;
only then is it fully decoded, because scoring will decode it again and a
file that fails there must fail here, in the pull request, instead.
"""

from __future__ import annotations

import io
import struct

from PIL import Image

SIGNATURE = b"\x89PNG\r\n\x1a\n"
IHDR_START = b"\x00\x00\x00\x0dIHDR"
IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
MAX_BYTES = 8 * 1024 * 1024
MIN_SIDE, MAX_SIDE = 256, 2048
OTHER_FORMATS = ((b"\xff\xd8\xff", "JPEG"), (b"GIF8", "GIF"), (b"BM", "BMP"), (b"II*\x00", "TIFF"),
                 (b"MM\x00*", "TIFF"))


def png_problems(data: bytes) -> tuple[list[str], tuple[int, int] | None]:
    """Problems of one PNG file and its (width, height) when it decoded; ([], size) means acceptable."""
    if len(data) > MAX_BYTES:
        return [f"{len(data)} bytes; at most {MAX_BYTES} ({MAX_BYTES // 2**20} MiB) per image"], None
    if not data.startswith(SIGNATURE):
        return [f"not a PNG file ({_sniff(data)}); only PNG is accepted, whatever the file name says"], None
    if data[8:16] != IHDR_START or len(data) < 33:
        return ["damaged PNG: the first chunk is not a complete IHDR header"], None
    width, height = struct.unpack(">II", data[16:24])
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        return [f"declared size {width}x{height} px; each side must be {MIN_SIDE}..{MAX_SIDE} px "
                "(checked before decoding)"], None
    problems = []
    if not data.endswith(IEND):
        at = data.rfind(IEND)
        problems.append(f"{len(data) - at - len(IEND)} bytes after the end of the PNG (IEND chunk)" if at >= 0
                        else "truncated: no IEND chunk at the end")
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            if getattr(image, "is_animated", False):
                frames = getattr(image, "n_frames", 2)
                return [*problems, f"animated PNG with {frames} frames; one still image per job"], None
            image.verify()  # chunk CRCs and structure
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            image.load()  # every pixel decompresses
            size = image.size
    except Exception as error:  # Pillow raises many types for hostile input; each means "undecodable"
        return [*problems, f"cannot be decoded ({type(error).__name__}: {error})"], None
    return problems, size


# Ancillary chunks that change decoded pixels are kept; every other ancillary chunk (tEXt, zTXt, iTXt, eXIf,
# tIME, pHYs, ...) is dropped on import: the site republishes images, not megabytes of someone's metadata.
KEPT_ANCILLARY = (b"tRNS",)


def strip_ancillary(data: bytes) -> bytes:
    """The PNG with only its critical chunks (IHDR, PLTE, IDAT, IEND) and KEPT_ANCILLARY: the same pixels.

    Called on bytes png_problems accepted, so the chunk structure is known to be sound.
    """
    out, at = [SIGNATURE], len(SIGNATURE)
    while at + 8 <= len(data):
        length = struct.unpack(">I", data[at:at + 4])[0]
        kind = data[at + 4:at + 8]
        end = at + 12 + length  # length, type, data, CRC
        if kind[:1].isupper() or kind in KEPT_ANCILLARY:  # an upper-case first letter marks a critical chunk
            out.append(data[at:end])
        at = end
        if kind == b"IEND":
            break
    return b"".join(out)


def describe_format(data: bytes) -> str:
    """What the bytes look like ("looks like WebP", "empty file"): for errors about a file that is not a PNG."""
    return _sniff(data)


def _sniff(data: bytes) -> str:
    for magic, name in OTHER_FORMATS:
        if data.startswith(magic):
            return f"looks like {name}"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "looks like WebP"
    return "empty file" if not data else f"starts with {data[:8]!r}"
