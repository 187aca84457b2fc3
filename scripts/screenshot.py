#!/usr/bin/env python3
"""Headless-Chromium screenshots of the built site at desktop and phone widths, checked to be non-blank and
checked for the elements a reader needs.

    python scripts/screenshot.py public --out shots/

takes the home page, a model card, a pending model's page, the gallery, a finder page, the figures page and the
submit page at 1280 and 390 px wide (`<page>-<width>.png`, the first screen alone as `<page>-<width>-fold.png`,
and what was measured in `report.json`: page height, what is above the fold) and exits non-zero when Chromium is
missing or fails, when a screenshot is blank (pixel standard deviation below a threshold: an empty white page or a
crash page has almost none), or when a layout check fails. Headless Chromium lays out no window narrower than
500 px, so each page is shown in an iframe of the exact width, from a hidden page next to it (removed
afterwards, so relative links still resolve). In the same browser run, a probe script added to a hidden copy of
the page reports what it measures: the skip link, the sticky first column, SCR right after the model name,
text and controls that fit the screen, the focus ring, figures kept readable, the finder filters, and on the home
page that the answer and the start of the summary are in the first screen (1280x800, 390x844) and that N = 10 is
reachable without a sideways scroll. Chromium runs with a throw-away profile, no network services and no sandbox
(CI containers run as root).
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from PIL import Image, ImageStat

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
MIN_STDDEV = 8.0  # mean over RGB channels; a blank page is ~0, a rendered table page is well above 20
WIDTHS = (1280, 390)
HEIGHT = 2000
FOLD = {1280: 800, 390: 844}  # the first screen of a laptop and of a phone
MIN_WINDOW = 500  # headless Chromium's narrowest window
PREFERRED_CARD = "collage"  # the first card by name otherwise
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars")

# Runs after the page's own script, inside the frame; posts its findings as JSON to the frame page.
PROBE = r"""
<script>
(function () {
  var width = document.documentElement.clientWidth, report = {width: width};
  report.height = document.documentElement.scrollHeight;
  var top = function (el) { return el ? Math.round(el.getBoundingClientRect().top + window.scrollY) : null; };
  var bottom = function (el) { return el ? Math.round(el.getBoundingClientRect().bottom + window.scrollY) : null; };
  var answer = document.querySelector("ul.answer");
  report.answer_bottom = bottom(answer);
  var summary = document.querySelector("table.summary");
  if (summary) {
    report.summary_top = top(summary.querySelector("tbody tr"));
    var cells = Array.prototype.filter.call(summary.querySelectorAll("td[data-n]"), function (td) {
      return td.offsetParent !== null; });
    report.summary_right = Math.round(Math.max.apply(null, cells.map(function (td) {
      return td.getBoundingClientRect().right; }).concat([0])));
  }
  var skip = document.querySelector("a.skip");
  report.skip_link = !!skip && skip === document.querySelector("a[href]") &&
    !!document.querySelector(skip.getAttribute("href"));
  var table = Array.prototype.find.call(document.querySelectorAll("table.summary, table.results"), function (t) {
    return t.tHead && t.tHead.offsetParent !== null; });  /* a stacked summary (phone) has no header row */
  if (table) {
    var heads = Array.prototype.filter.call(table.tHead.querySelectorAll("th"), function (th) {
      return th.colSpan === 1 && th.offsetParent !== null; });
    heads.sort(function (a, b) { return a.getBoundingClientRect().left - b.getBoundingClientRect().left; });
    report.first_headers = heads.slice(0, 3).map(function (th) {
      return (th.querySelector(".label") || th).innerText.trim(); });
    var first = table.querySelector("tbody tr:not(.group) > *");
    report.sticky_first = first ? getComputedStyle(first).position : "";
    var scr = Array.prototype.find.call(table.querySelectorAll("thead th"), function (th) {
      return th.textContent.indexOf("SCR@") === 0 && th.offsetParent !== null; });
    report.scr_right = scr ? Math.round(scr.getBoundingClientRect().right) : null;
  }
  /* where an element's text ends (a caption's box is as wide as its table, its text need not be) */
  var textRight = function (el) {
    if (/^(SELECT|INPUT|BUTTON|PRE)$/.test(el.tagName)) { return el.getBoundingClientRect().right; }
    var range = document.createRange(); range.selectNodeContents(el);
    return range.getBoundingClientRect().right; };
  var texts = document.querySelectorAll("caption, .table-note, figcaption, p, h1, h2, select, input, button, pre");
  report.too_wide = Array.prototype.filter.call(texts, function (el) {
    var shown = el.offsetParent !== null && (el.tagName === "CAPTION" || !el.closest(".scroll"));
    return shown && textRight(el) > width + 1;
  }).map(function (el) { return el.tagName + ": " + el.textContent.trim().slice(0, 40); }).slice(0, 5);
  report.figures = Array.prototype.map.call(document.querySelectorAll("figure.plot img"), function (img) {
    return [Math.round(img.getBoundingClientRect().width), img.naturalWidth || Number(img.getAttribute("width"))]; });
  var button = document.querySelector("th button");
  if (button) {
    button.focus({preventScroll: true}); report.focus_ring = getComputedStyle(button).outlineStyle; button.blur(); }
  window.scrollTo(0, 0);
  var finder = document.getElementById("finder-controls");
  report.finder = finder ? !finder.hidden : null;
  parent.postMessage(JSON.stringify(report), "*");
})();
</script>
"""
# In the frame page: writes the probe's message into <pre id="probe-report"> for --dump-dom to return.
RECEIVER = ('<script>window.addEventListener("message", function (event) { var out = document.createElement("pre"); '
            'out.id = "probe-report"; out.textContent = event.data; document.body.appendChild(out); });</script>')


def find_browser() -> str | None:
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def run_browser(browser: str, page: Path, extra: Sequence[str], width: int, timeout: float = 90) -> str:
    """Run headless Chromium on `page` with a throw-away profile; return its stdout."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [browser, *FLAGS, f"--user-data-dir={profile}", f"--window-size={max(width, MIN_WINDOW)},{HEIGHT}",
                   *extra, page.resolve().as_uri()]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{browser} failed on {page} (exit {result.returncode}): {result.stderr[-2000:]}")
    return result.stdout


@contextmanager
def framed(page: Path, width: int) -> Iterator[Path]:
    """A hidden page next to `page` that shows it in an iframe exactly `width` px wide (headless Chromium lays
    out no window narrower than MIN_WINDOW, so a phone width needs a frame) and receives the probe's report;
    removed afterwards."""
    frame = page.with_name(f".frame-{width}-{page.name}")
    frame.write_text(f'<!doctype html><html><body style="margin:0">{RECEIVER}<iframe src="{page.name}" '
                     f'style="width:{width}px;height:{HEIGHT}px;border:0;display:block"></iframe></body></html>',
                     encoding="utf-8")
    try:
        yield frame
    finally:
        frame.unlink(missing_ok=True)


def shoot(browser: str, page: Path, png: Path, width: int = WIDTHS[0]) -> dict:
    """Screenshot `page` at `width` into `png` (width x HEIGHT) and return what PROBE measured, in one browser run
    on a hidden copy of the page (next to it, removed afterwards) shown in a frame of that width."""
    png.parent.mkdir(parents=True, exist_ok=True)
    copy = page.with_name(f".probe-{page.name}")
    copy.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    try:
        with framed(copy, width) as frame:
            dom = run_browser(browser, frame, [f"--screenshot={png.resolve()}", "--dump-dom",
                                               "--virtual-time-budget=3000"], width)
    finally:
        copy.unlink(missing_ok=True)
    if not png.is_file():
        raise RuntimeError(f"{browser} wrote no screenshot of {page}")
    with Image.open(png) as image:
        cropped = image.crop((0, 0, width, HEIGHT))
        fold = image.crop((0, 0, width, FOLD.get(width, HEIGHT)))
    cropped.save(png)
    fold.save(png.with_name(f"{png.stem}-fold.png"))
    match = re.search(r'<pre id="probe-report">(.*?)</pre>', dom, re.S)
    if not match:
        raise RuntimeError(f"the layout probe did not report on {page}")
    return json.loads(html.unescape(match.group(1)))


def problems(label: str, report: dict) -> list[str]:
    """What a reader would miss on this page at this width, from the probe's report."""
    found = []
    if not report.get("skip_link"):
        found.append("no working skip link as the first link")
    if report.get("too_wide"):
        found.append(f"text wider than the screen: {report['too_wide']}")
    if "first_headers" in report:
        if report.get("sticky_first") != "sticky":
            found.append("the first column does not stay in view")
        if len(report["first_headers"]) < 2 or not report["first_headers"][1].startswith("SCR@"):
            found.append(f"SCR does not follow the model name: {report['first_headers']}")
        if report.get("scr_right") is not None and report["scr_right"] > report["width"]:
            found.append("the SCR column starts off-screen")
    if report.get("focus_ring") in ("none", None) and "focus_ring" in report:
        found.append("a focused sort button shows no focus ring")
    if label == "finder" and report.get("finder") is False:
        found.append("the finder filters did not appear")
    fold = FOLD.get(report.get("width", 0))
    if label == "index" and fold:
        if report.get("answer_bottom") is None or report["answer_bottom"] > fold:
            found.append(f"the answer sentences end below the first screen ({report.get('answer_bottom')} > {fold})")
        if report.get("summary_top") is not None and report["summary_top"] > fold:
            found.append(f"the summary starts below the first screen ({report['summary_top']} > {fold})")
        if report.get("summary_right", 0) > report["width"]:
            found.append("the summary needs a sideways scroll to reach the largest N")
    small = [shown for shown, natural in report.get("figures", []) if natural and shown < 0.5 * natural]
    if small:
        found.append(f"figures drawn below half their size: {small}")
    return found


def pending_page(site: Path) -> Path | None:
    """A pending model's page: the first the home page's pending list links to."""
    match = re.search(r'<ul class="pending">.*?<a href="(models/[^"#]+\.html)"',
                      (site / "index.html").read_text(encoding="utf-8"), re.S)
    return site / match.group(1) if match else None


def pages_to_shoot(site: Path) -> list[tuple[str, Path]]:
    """The home page, a model card (collage's when there is one), a pending model's page, the gallery, a finder
    page, the figures page and the submit page (those that exist)."""
    index = site / "index.html"
    if not index.is_file():
        raise FileNotFoundError(f"{index}: not found; build the site first (collapsebench site)")
    cards = sorted((site / "models").glob("*.html"), key=lambda p: (p.stem != PREFERRED_CARD, p.name))
    finder = sorted((site / "finder").glob("*.html"))
    pages = [("index", index)] + ([("model_card", cards[0])] if cards else [])
    pending = pending_page(site)
    pages += [("pending_model", pending)] if pending else []
    pages += [("gallery", site / "gallery.html")] + ([("finder", finder[0])] if finder else [])
    return pages + [(name, site / f"{name}.html") for name in ("figures", "submit")
                    if (site / f"{name}.html").is_file()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("site", type=Path, nargs="?", default=Path("public"))
    parser.add_argument("--out", type=Path, default=Path("screenshots"))
    parser.add_argument("--widths", type=int, nargs="+", default=list(WIDTHS))
    args = parser.parse_args(argv)
    browser = find_browser()
    if browser is None:
        print(f"no Chromium found (looked for {', '.join(BROWSERS)})", file=sys.stderr)
        return 2
    failed, reports = False, {}
    for label, page in pages_to_shoot(args.site):
        for width in args.widths:
            png = args.out / f"{label}-{width}.png"
            reports[png.stem] = shoot(browser, page, png, width)
            spread = pixel_stddev(png)
            found = problems(label, reports[png.stem]) + (["blank"] if spread < MIN_STDDEV else [])
            failed |= bool(found)
            print(f"{png}: pixel stddev {spread:.1f}" + "".join(f"\n  PROBLEM: {p}" for p in found))
    (args.out / "report.json").write_text(json.dumps(reports, indent=1, sort_keys=True), encoding="utf-8")
    return 1 if failed else 0


def pixel_stddev(png: Path) -> float:
    """Mean over RGB channels of the pixel standard deviation: ~0 for a blank page."""
    with Image.open(png) as image:
        return sum(ImageStat.Stat(image.convert("RGB")).stddev) / 3


if __name__ == "__main__":
    sys.exit(main())
