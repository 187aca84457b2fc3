"""An answer image goes through the checks a results submission's images go through, then is stored as PNG.

A provider's bytes are untrusted like a pull request's: the size cap is checked before anything is decoded, a
PNG must pass `intake/pngcheck.png_problems` as it is, a JPEG must declare sides within the same bounds before it
is decoded, and the PNG we store must pass `png_problems` again, so that its results submission is accepted.
"""

from __future__ import annotations

import io

from PIL import Image

from collapsebench.core.pngcheck import (
    MAX_BYTES,
    MAX_SIDE,
    MIN_SIDE,
    SIGNATURE,
    describe_format,
    png_problems,
)
from collapsebench.models.api.http import ProviderError

JPEG = b"\xff\xd8\xff"


def stored_png(data: bytes, what: str) -> tuple[Image.Image, bytes]:
    """The answer decoded and re-encoded as PNG (RGB); ProviderError naming `what` when it is not acceptable."""
    if len(data) > MAX_BYTES:
        raise ProviderError(f"{what}: the answer image is {len(data)} bytes; at most {MAX_BYTES} are accepted")
    if data.startswith(SIGNATURE):
        problems, _ = png_problems(data)
        if problems:
            raise ProviderError(f"{what}: the answer PNG is not acceptable: {'; '.join(problems)}")
        image = _decode(data, "PNG", what)
    elif data.startswith(JPEG):
        image = _decode(data, "JPEG", what)
    else:
        raise ProviderError(f"{what}: the answer is not a PNG or JPEG image ({describe_format(data)})")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    png = buffer.getvalue()
    problems, _ = png_problems(png)
    if problems:
        raise ProviderError(f"{what}: the stored PNG would not pass the submission checks: {'; '.join(problems)}")
    return image, png


def _decode(data: bytes, kind: str, what: str) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data), formats=[kind]) as image:
            width, height = image.size  # from the header: nothing decoded yet
            if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
                raise ProviderError(f"{what}: the answer {kind} is {width}x{height} px; each side must be "
                                    f"{MIN_SIDE}..{MAX_SIDE} px")
            image.load()
            return image.convert("RGB")
    except ProviderError:
        raise
    except Exception as error:  # Pillow raises many types for damaged input; each means "undecodable"
        raise ProviderError(f"{what}: the answer {kind} cannot be decoded ({type(error).__name__}: {error})") from None
