#!/usr/bin/env python3
"""Headless-Chromium screenshots of the built site, checked to be non-blank.

    python scripts/screenshot.py public --out shots/

takes public/index.html and the first model card (public/models/*.html) at
1280x2000 and exits non-zero when Chromium is missing, fails, or a screenshot
is blank (pixel standard deviation below a threshold: an empty white page or
a crash page has almost none). Chromium runs with a throw-away profile, no
network services and no sandbox (CI containers run as root).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageStat

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
MIN_STDDEV = 8.0  # mean over RGB channels; a blank page is ~0, a rendered table page is well above 20


def find_browser() -> str | None:
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def screenshot(browser: str, page: Path, png: Path, size: str = "1280,2000", timeout: float = 90) -> Path:
    """Render `page` (a local HTML file) into `png` with headless Chromium."""
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                   "--disable-component-update", "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}",
                   f"--screenshot={png.resolve()}", f"--window-size={size}", page.resolve().as_uri()]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0 or not png.is_file():
        raise RuntimeError(f"{browser} failed on {page} (exit {result.returncode}): {result.stderr[-2000:]}")
    return png


def pixel_stddev(png: Path) -> float:
    """Mean over RGB channels of the pixel standard deviation: ~0 for a blank page."""
    with Image.open(png) as image:
        return sum(ImageStat.Stat(image.convert("RGB")).stddev) / 3


def pages_to_shoot(site: Path) -> list[tuple[str, Path]]:
    """The home page and the first model card (by file name), as (label, path)."""
    index = site / "index.html"
    if not index.is_file():
        raise FileNotFoundError(f"{index}: not found; build the site first (collapsebench site)")
    cards = sorted((site / "models").glob("*.html"))
    return [("index", index)] + ([("model_card", cards[0])] if cards else [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("site", type=Path, nargs="?", default=Path("public"))
    parser.add_argument("--out", type=Path, default=Path("screenshots"))
    parser.add_argument("--window-size", default="1280,2000")
    args = parser.parse_args(argv)
    browser = find_browser()
    if browser is None:
        print(f"no Chromium found (looked for {', '.join(BROWSERS)})", file=sys.stderr)
        return 2
    failed = False
    for label, page in pages_to_shoot(args.site):
        png = screenshot(browser, page, args.out / f"{label}.png", args.window_size)
        spread = pixel_stddev(png)
        blank = spread < MIN_STDDEV
        failed |= blank
        print(f"{png}: pixel stddev {spread:.1f}{' BLANK' if blank else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
