"""The site in a real browser (headless Chromium): screenshots at 1280 and 390 px of the home page, a model card, a
pending model's page, the gallery, a finder page, the figures and the submit page, checked for what a reader needs
(the answer in the first screen, N = 10 without a sideways scroll on a phone); sorting and filtering; tau, sort and
filters kept in the URL; and everything but sorting and filtering working without JavaScript."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from test_site import REPO, synthetic_site


def screenshot_script():  # noqa: ANN201 - the scripts/screenshot.py module
    """scripts/screenshot.py as a module; skips the calling test (saying why) when no Chromium is installed."""
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import screenshot
    finally:
        sys.path.remove(str(REPO / "scripts"))
    if screenshot.find_browser() is None:
        reason = f"no Chromium binary found (looked for {', '.join(screenshot.BROWSERS)})"
        print(f"SKIP reason: {reason}")
        pytest.skip(reason)
    return screenshot


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_site(tmp_path_factory, "browser", entries=("mosaic",))  # mosaic: a pending model's page


def report(page: Path, script: str, query: str = "", keep_site_script: bool = True) -> dict:
    """Open `page` (+ `query`) in Chromium with `script` run after the site's own; return what it reports with
    `done(value)`. Without `keep_site_script` the page runs without the site's JavaScript."""
    browser = screenshot_script().find_browser()
    source = page.read_text(encoding="utf-8")
    if not keep_site_script:
        source = re.sub(r'<script src="[^"]*site\.js"></script>', "", source)
    copy = page.with_name(f".test-{page.name}")
    copy.write_text(source.replace("</body>", "<script>function done(value) { var out = document.createElement("
                                              "'pre'); out.id = 'test-report'; out.textContent = JSON.stringify(value);"
                                              f" document.body.appendChild(out); }}\n{script}</script></body>"),
                    encoding="utf-8")
    try:
        result = subprocess.run([browser, *screenshot_script().FLAGS, f"--user-data-dir={page.parent / '.profile'}",
                                 "--window-size=1280,2000", "--dump-dom", copy.as_uri() + query],
                                capture_output=True, text=True, timeout=120, check=False)
    finally:
        copy.unlink()
        shutil.rmtree(page.parent / ".profile", ignore_errors=True)
    match = re.search(r'<pre id="test-report">(.*?)</pre>', result.stdout, re.S)
    assert match, result.stderr[-2000:]
    return json.loads(html.unescape(match.group(1)))


TABLE_STATE = """
var table = document.getElementById("t-reproduced");
var heads = Array.from(table.tHead.rows[0].cells);
var column = heads.findIndex(function (th) { return th.getAttribute("data-key") === "dinov2"; });
done({tau: document.querySelector('input[name="tau"]:checked').value,
      visible: heads.filter(function (th) { return th.offsetParent !== null; }).map(function (th) {
        return th.getAttribute("data-key"); }),
      sorted: heads[column].getAttribute("aria-sort"),
      buttons: table.querySelectorAll("th button").length,
      groups: Array.from(table.tBodies).map(function (body) {
        return Array.from(body.rows).filter(function (row) { return !row.classList.contains("group"); }).map(
          function (row) { return Number(row.cells[column].getAttribute("data-sort")); }); }),
      search: location.search});
"""


def test_screenshots_at_desktop_and_phone_width_show_what_a_reader_needs(site: Path, tmp_path: Path) -> None:
    screenshot = screenshot_script()
    shutil.copytree(site, tmp_path / "public")
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "screenshot.py"), str(tmp_path / "public"),
                             "--out", str(tmp_path / "shots")], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and "PROBLEM" not in result.stdout, result.stdout + result.stderr
    labels = ("index", "model_card", "pending_model", "gallery", "finder", "figures", "submit")
    for label in labels:
        for width in screenshot.WIDTHS:
            png = tmp_path / "shots" / f"{label}-{width}.png"
            with Image.open(png) as image:
                assert image.size == (width, screenshot.HEIGHT)
            assert screenshot.pixel_stddev(png) > screenshot.MIN_STDDEV, png
    assert not list((tmp_path / "public").rglob(".probe-*")) and not list((tmp_path / "public").rglob(".frame-*"))
    reports = json.loads((tmp_path / "shots" / "report.json").read_text(encoding="utf-8"))
    phone = {label: reports[f"{label}-390"] for label in labels}
    desktop = {label: reports[f"{label}-1280"] for label in labels}
    assert phone["index"]["width"] == 390 and phone["index"]["skip_link"]
    assert desktop["index"]["first_headers"][:2] == ["model", "SCR@0.4 \u2193"]  # the summary: SCR after the name
    assert phone["model_card"]["first_headers"][:2] == ["N", "SCR@0.4 \u2193"]
    assert phone["index"]["sticky_first"] == "sticky" and phone["index"]["scr_right"] <= 390
    assert all(not report["too_wide"] for report in phone.values()), phone  # captions and notes wrap
    assert phone["index"]["focus_ring"] not in ("none", "") and phone["finder"]["finder"] is True
    for width, report in ((390, phone["index"]), (1280, desktop["index"])):  # the answer first
        assert report["answer_bottom"] <= screenshot.FOLD[width] and report["summary_top"] <= screenshot.FOLD[width]
        assert report["summary_right"] <= width  # N = 10 on screen: a stacked summary on the phone
    assert all(shown >= 0.5 * natural for shown, natural in phone["figures"]["figures"]), phone["figures"]


def test_tau_and_sort_are_read_from_the_url(site: Path) -> None:
    state = report(site / "index.html", TABLE_STATE, "?tau=0.5&sort=t-reproduced:dinov2:desc")
    assert state["tau"] == "0.5" and state["sorted"] == "descending"
    assert "scr_0.5" in state["visible"] and "scr_0.4" not in state["visible"]
    assert len(state["groups"]) == 2 and all(g == sorted(g, reverse=True) and len(g) == 3 for g in state["groups"])


def test_choosing_tau_and_sorting_is_kept_in_the_url(site: Path) -> None:
    clicks = ('document.getElementById("tau-06").click();'
              'document.querySelector("#t-reproduced th[data-key=dinov2] button").click();')
    state = report(site / "index.html", clicks + TABLE_STATE)
    assert state["search"] == "?tau=0.6&sort=t-reproduced%3Adinov2%3Aasc"
    assert state["sorted"] == "ascending" and all(g == sorted(g) for g in state["groups"])  # never mixes counts


def test_the_finder_filters_and_orders_worst_first_from_the_url(site: Path) -> None:
    state = report(site / "finder" / "beta-n4.html", """
var items = Array.from(document.querySelectorAll("#finder-list > li"));
var shown = items.filter(function (li) { return !li.hidden; });
done({form: !document.getElementById("finder-controls").hidden, total: items.length,
      shown: shown.map(function (li) { return [li.dataset.scene, li.dataset.collapsed]; }),
      count: document.getElementById("finder-count").textContent, search: location.search});""",
                   "?scene=occlusion&order=collapsed")
    assert state["form"] and state["total"] == 8 and len(state["shown"]) == 4
    assert all(scene == "occlusion" for scene, _ in state["shown"])
    collapsed = [int(c) for _, c in state["shown"]]
    assert collapsed == sorted(collapsed, reverse=True) and state["count"] == "4 of 8 images"


def test_without_javascript_everything_but_sorting_and_filtering_works(site: Path) -> None:
    page = site / "index.html"
    static = page.read_text(encoding="utf-8")
    page_05 = site / "index-tau05.html"  # the reader picked 0.5: only CSS may react
    page_05.write_text(static.replace('value="0.4" checked>', 'value="0.4">').replace('value="0.5">',
                                                                                     'value="0.5" checked>'),
                       encoding="utf-8")
    try:
        state = report(page_05, TABLE_STATE, keep_site_script=False)
    finally:
        page_05.unlink()
    assert "scr_0.5" in state["visible"] and "scr_0.4" not in state["visible"]  # the tau switch is pure CSS
    assert state["buttons"] == 0 and state["sorted"] is None  # no sorting: static order, every row there
    assert [len(g) for g in state["groups"]] == [3, 3]
    gallery = report(site / "finder" / "beta-n4.html", """done({form: document.getElementById("finder-controls").hidden,
      shown: Array.from(document.querySelectorAll("#finder-list > li")).filter(function (li) {
        return li.offsetParent !== null; }).length});""", keep_site_script=False)
    assert gallery == {"form": True, "shown": 8}  # no filters offered; every image listed, worst first
    columns = report(site / "index.html", """var table = document.getElementById("t-reproduced");
      var shown = function () { return Array.from(table.tHead.rows[0].cells).filter(function (th) {
        return th.offsetParent !== null; }).length; };
      var before = shown(); table.closest(".cols").querySelector(".allcols-box").click();
      done({before: before, after: shown()});""", keep_site_script=False)
    assert columns["after"] > columns["before"]  # "all columns" is CSS: it works without the script
