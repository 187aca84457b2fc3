"""The gallery: every seed, images stored by content (identical ones published once, at full resolution, with
resized variants for srcset), a worst-first finder paged by model and N with badges on every thumbnail, refusal
tiles, prev/next links, a worst-cases strip on each card, and the pool and casting of every image."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import make_pool
from PIL import Image
from synthetic_results import MODELS, PROMPTS, SEEDS, shared_results
from test_site import PAPER, build, check_links

from collapsebench.benchmark.pool import load_pool
from collapsebench.core.io import sha256_file
from collapsebench.leaderboard.store import NAME_HEX, ImageStore


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gallery")
    pool = load_pool(make_pool(root / "data", count=16, size=64))
    return build(shared_results(tmp_path_factory, PAPER), root / "public", pool=pool)


def finder_items(html: str) -> list[dict[str, str]]:
    """A finder page's list items as their data attributes, in page order."""
    return [dict(re.findall(r'data-([a-z0-9]+)="([^"]*)"', attrs))
            for attrs in re.findall(r"<li (data-scene=[^>]*)>", html.split('id="finder-list"')[1])]


def test_every_seed_of_every_model_is_shown_under_its_references(built: Path) -> None:
    page = (built / "gallery-n2.html").read_text(encoding="utf-8")
    prompts = [pid for pid, n, _ in PROMPTS if n == 2]
    assert re.findall(r'<article class="prompt" id="p(\d+)"', page) == [str(p) for p in prompts]
    for model in MODELS:
        for seed in SEEDS:
            assert page.count(f'alt="{model.title()} model: prompt 1, seed {seed}"') == 1, (model, seed)
    assert page.count('alt="reference S002"') >= 1
    assert "collapsed @0.4" in page and "scored with smoke backbones: no score shown" in page


def test_the_finder_is_paged_by_model_and_n_worst_first_with_badges_and_smoke_unscored(built: Path) -> None:
    pages = sorted((built / "finder").glob("*.html"))
    assert [p.name for p in pages] == sorted(f"{m}-n{n}.html" for m in MODELS for n in (2, 4))
    items = {page.stem: finder_items(page.read_text(encoding="utf-8")) for page in pages}
    assert sum(map(len, items.values())) == len(MODELS) * len(PROMPTS) * len(SEEDS)  # every image, once
    for model in ("alpha", "beta", "gamma"):
        html = (built / "finder" / f"{model}-n2.html").read_text(encoding="utf-8")
        scored = [float(item["dinov2"]) for item in items[f"{model}-n2"]]
        assert scored == sorted(scored) and len(scored) == 4 * len(SEEDS)  # worst DINOv2 first
        assert html.count('class="badges"') == len(scored) and "/2 collapsed</span>" in html
        assert '<option value="dinov2">' in html and "disabled" not in html.split('id="finder-controls"')[1]
    smoke = (built / "finder" / "collage-n2.html").read_text(encoding="utf-8")
    assert all(item["dinov2"] == "" and item["collapsed"] == "" for item in items["collage-n2"])
    orders = [int(item["order"]) for item in items["collage-n2"]]
    assert orders == sorted(orders) and 'class="badges"' not in smoke  # prompt order, no number shown
    assert '<option value="dinov2" disabled>' in smoke and '<option value="prompt" selected>' in smoke
    for page in pages:
        html = page.read_text(encoding="utf-8")
        assert '<form class="filters" id="finder-controls" hidden>' in html and '<select name="scene">' in html
    gallery = (built / "gallery.html").read_text(encoding="utf-8")
    assert "<img" not in gallery.split('id="finder"')[1].split("</section>")[0]  # an index of pages, not a list
    assert all(f'href="finder/{p.name}"' in gallery for p in pages)


def test_a_refused_job_is_a_tile_with_its_reason_never_a_collapse(tmp_path: Path,
                                                                  tmp_path_factory: pytest.TempPathFactory) -> None:
    results = tmp_path / "results"
    shutil.copytree(shared_results(tmp_path_factory, PAPER), results)
    folder = results / "models" / "beta"
    lines = [json.loads(line) for line in (folder / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
    kept = [line for line in lines if (line["prompt_id"], line["seed"]) != (5, 1)]  # beta's p5 seed 1: refused
    (folder / "manifest.jsonl").write_text("".join(json.dumps(line) + "\n" for line in kept), encoding="utf-8")
    (folder / "refusals.jsonl").write_text(json.dumps({
        "key": "p05_s1", "prompt_id": 5, "seed": 1, "n_subjects": 4, "scene": "neutral", "reason": "content_policy",
        "detail": "blocked", "provider": "openai", "request_date": "2026-12-03"}) + "\n", encoding="utf-8")
    public = build(results, tmp_path / "public")
    tile = "refused by openai on 2026-12-03: content policy"
    finder = (public / "finder" / "beta-n4.html").read_text(encoding="utf-8")
    assert f'<div class="missing refused">{tile}</div>' in finder and "1 refused jobs" in finder
    assert f'<div class="missing refused">{tile}</div>' in (public / "gallery-n4.html").read_text(encoding="utf-8")
    assert "1 refused" in (public / "gallery.html").read_text(encoding="utf-8")
    assert (public / "data/models/beta/refusals.jsonl").read_bytes() == (folder / "refusals.jsonl").read_bytes()
    assert check_links(public) > 100


def test_prev_and_next_links_walk_every_prompt_across_pages(built: Path) -> None:
    chain = []
    for page in sorted(built.glob("gallery-n*.html"), key=lambda p: int(p.stem.split("n")[-1])):
        html = page.read_text(encoding="utf-8")
        for article in re.findall(r'<article class="prompt" (.*?)</article>', html, re.S):
            anchor = re.match(r'id="([^"]+)"', article).group(1)
            prev = re.search(r'<a href="([^"]+)" rel="prev">', article)
            after = re.search(r'<a href="([^"]+)" rel="next">', article)
            chain.append((f"{page.name}#{anchor}", prev and prev.group(1), after and after.group(1)))
    assert chain[0][1] is None and chain[-1][2] is None
    for (here, _, after), (there, before, _) in zip(chain, chain[1:]):
        assert after == there and before == here
    assert ("gallery-n2.html#p4", "gallery-n2.html#p3", "gallery-n4.html#p5") in chain  # crosses to the next page
    assert check_links(built) > 100  # anchors included


def test_each_card_shows_its_worst_images_and_a_smoke_card_only_a_sample(built: Path) -> None:
    beta = (built / "models" / "beta.html").read_text(encoding="utf-8").split('<section id="worst"')[1]
    beta = beta.split("</section>")[0]
    assert "Worst images" in beta
    values = [float(v) for v in re.findall(r"DINOv2 (\d\.\d{3})", beta)]
    assert len(values) == 8 and values == sorted(values)
    assert 'href="../finder/beta-n2.html"' in beta and 'href="../finder/beta-n4.html"' in beta
    collage = (built / "models" / "collage.html").read_text(encoding="utf-8").split('<section id="worst"')[1]
    assert "Some of its images" in collage and "DINOv2 0." not in collage.split("</section>")[0]


def test_identical_images_are_published_once_at_full_resolution(tmp_path: Path,
                                                                tmp_path_factory: pytest.TempPathFactory) -> None:
    results = tmp_path / "results"
    shutil.copytree(shared_results(tmp_path_factory, PAPER), results)
    one = results / "models" / "gamma" / "images" / "p01_s0.png"
    for image in (results / "models" / "gamma" / "images").glob("*.png"):  # gamma draws one picture for every job
        if image != one:
            shutil.copyfile(one, image)
    sources = {sha256_file(p) for p in (results / "models").glob("*/images/*.png")}
    public = build(results, tmp_path / "public")
    published = sorted((public / "images").iterdir())
    assert len(published) == len(sources) == 3 * len(PROMPTS) * len(SEEDS) + 1
    assert {p.stem for p in published} == {digest[:NAME_HEX] for digest in sources}
    page = (public / "gallery-n2.html").read_text(encoding="utf-8")
    name = sha256_file(one)[:NAME_HEX]
    assert page.count(f'href="images/{name}.webp"') == len([p for p in PROMPTS if p[1] == 2]) * len(SEEDS)
    with Image.open(one) as source, Image.open(public / "images" / f"{name}.webp") as copy:
        assert copy.format == "WEBP" and copy.size == source.size  # one click away: the model's own resolution
        difference = np.abs(np.asarray(source.convert("RGB"), float) - np.asarray(copy.convert("RGB"), float))
        assert difference.mean() < 4  # quality 90: not bit for bit (the manifest's PNG is in the results remote)


def test_images_webp_cannot_hold_exactly_are_published_as_they_are(tmp_path: Path) -> None:
    deep = tmp_path / "deep.png"
    Image.fromarray(np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20).save(deep)
    published = ImageStore(tmp_path / "site").publish(deep)
    assert published.full.endswith(".png")
    assert (tmp_path / "site" / published.full).read_bytes() == deep.read_bytes()
    assert (tmp_path / "site" / published.thumb).is_file()


def test_every_image_names_its_pool_and_casting_and_foreign_castings_get_their_own_references(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    results = tmp_path / "results"
    shutil.copytree(shared_results(tmp_path_factory, PAPER), results)
    for model in MODELS:  # record pool and casting as generate does; beta was cast from another pool
        manifest = results / "models" / model / "manifest.jsonl"
        pool, casting = ("pool-other", "c0ffee") if model == "beta" else ("pool-demo", "abc123")
        lines = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]
        manifest.write_text("".join(json.dumps({**line, "pool": pool, "casting": casting}) + "\n" for line in lines),
                            encoding="utf-8")
    pool = load_pool(make_pool(tmp_path / "data", count=16, size=64))
    public = build(results, tmp_path / "public", pool=pool, pool_info={"id": "pool-demo", "name": "demo",
                                                                         "description": "the demo pool"})
    gallery = (public / "gallery.html").read_text(encoding="utf-8")
    note = gallery.split('id="casting"')[1].split("</div>")[0]
    assert "The images come from 2 castings" in note
    assert "pool <code>pool-demo</code> (demo) with casting <code>abc123</code> (48 images)" in note
    assert "pool <code>pool-other</code> with casting <code>c0ffee</code> (16 images)" in note
    assert "no image here is the paper's" in note
    page = (public / "gallery-n2.html").read_text(encoding="utf-8")
    assert 'id="p1"' in page and 'id="p1-c0ffee"' in page
    foreign = page.split('id="p1-c0ffee"')[1].split("</article>")[0]
    assert "no reference" in foreign and "Beta model" in foreign and "Alpha model" not in foreign
    assert "Pool <code>pool-other</code> · casting <code>c0ffee</code>" in foreign
    assert check_links(public) > 100
