"""The gallery: every image of every seed, next to its references, and the per-image numbers to hunt failures with.

Each prompt gets an article on its subject count's page: the references in
slot order, then each model's images for every seed, with prev/next links to
the neighbouring prompts. The "finder" is paged by model and N (at most 45
images a page, where one list of every image made a 424 KB page): each page
is ordered worst-first by the image's mean DINOv2 when its scores may be
shown, can be filtered by scene and reordered by collapsed subjects or matched
SCR, and puts the numbers and a collapsed/missing badge on every thumbnail. A
job a closed API refused has a tile with the provider's reason instead of an
image. A model card shows the model's worst images. Per-image numbers are
shown, and used for ordering, only for models scored with the pinned
backbones: a smoke or custom number never appears next to an image.

A prompt's references depend on the casting (which pool subjects fill its
slots), recorded per image with the pool id. Images of different castings are
never put under the same references.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from collapsebench.benchmark.pool import Subject
from collapsebench.core.errors import BenchError
from collapsebench.core.io import read_csv
from collapsebench.core.manifest import Manifest
from collapsebench.core.metric_table import HEADLINE_TAU
from collapsebench.core.refusals import Refusals
from collapsebench.leaderboard.results_tables import scene_order, slug
from collapsebench.leaderboard.store import ImageStore
from collapsebench.reporting.metrics import image_scores

COLLAPSE_TAU = HEADLINE_TAU
WORST_SHOWN = 8  # images in a model card's strip
NOT_RECORDED = "not recorded"


@dataclass(frozen=True)
class GalleryModel:
    """A model the gallery shows; `fence` is 'smoke' or 'custom' when its scores may not be shown."""

    name: str
    slug: str
    label: str
    fence: str = ""


@dataclass(frozen=True)
class Verdict:
    """Per-image numbers from scores.csv: mean DINOv2, subjects below COLLAPSE_TAU, matched SCR (or None)."""

    dinov2: float
    collapsed: int
    matched: float | None
    missing: int | None = None  # subjects the detector found no person/animal for (None: detection did not run)


@dataclass
class Shot:
    """One image (one model, prompt, seed), or the note saying why there is none."""

    model: GalleryModel
    prompt_id: int
    seed: int
    n_subjects: int
    scene: str
    href: str  # the prompt's article
    full: str | None = None
    thumb: str | None = None
    width: int = 0
    height: int = 0
    verdict: Verdict | None = None
    sent_prompt: str | None = None
    note: str = ""
    order: int = 0  # position in prompt order (N, prompt, model, seed): the finder's "prompt order"
    variants: tuple[tuple[str, int], ...] = ()
    refusal: dict[str, Any] | None = None  # a closed API's answer without an image (refusals.jsonl)

    @property
    def alt(self) -> str:
        return f"{self.model.label}: prompt {self.prompt_id}, seed {self.seed}"

    @property
    def refusal_text(self) -> str:
        if not self.refusal:
            return ""
        reason = str(self.refusal.get("reason", "refused")).replace("_", " ")
        when = f" on {self.refusal['request_date']}" if self.refusal.get("request_date") else ""
        retried = " (no answer: retried by the next run)" if self.refusal.get("reason") == "error" else ""
        return f"refused by {self.refusal.get('provider') or 'the provider'}{when}: {reason}{retried}"


@dataclass
class GalleryPrompt:
    """One prompt under one casting: its references and every model's images for every seed."""

    id: int
    anchor: str
    page: str
    n_subjects: int
    scene: str
    prompt: str
    pool: str
    casting: str
    subjects: list[dict[str, Any]]
    seeds: list[int]
    rows: list[tuple[GalleryModel, list[Shot]]] = field(default_factory=list)
    prev: str | None = None
    next: str | None = None

    @property
    def href(self) -> str:
        return f"{self.page}#{self.anchor}"


@dataclass
class FinderPage:
    """One model's images (and refusal tiles) at one subject count: a page of the finder."""

    model: GalleryModel
    n_subjects: int
    shots: list[Shot]

    @property
    def path(self) -> str:
        return f"finder/{self.model.slug}-n{self.n_subjects}.html"

    @property
    def scored(self) -> bool:
        return any(s.verdict for s in self.shots)

    @property
    def refused(self) -> int:
        return sum(1 for s in self.shots if s.refusal)

    @property
    def images(self) -> int:
        return sum(1 for s in self.shots if s.full)


@dataclass
class Gallery:
    prompts: list[GalleryPrompt]
    castings: list[tuple[str, str, int]]  # (pool, casting, images) over every published image
    refusals: dict[str, list[Shot]] = field(default_factory=dict)  # model -> tiles of refused jobs

    def pages(self) -> dict[int, list[GalleryPrompt]]:
        """Prompts by subject count, in order: one page each."""
        pages: dict[int, list[GalleryPrompt]] = {}
        for prompt in self.prompts:
            pages.setdefault(prompt.n_subjects, []).append(prompt)
        return dict(sorted(pages.items()))

    @cached_property
    def finder(self) -> list[Shot]:
        """Every published image, worst DINOv2 first; images without shown scores after them, in prompt order."""
        shots = [s for p in self.prompts for _, row in p.rows for s in row if s.full]
        return sorted(shots, key=lambda s: (s.verdict is None, s.verdict.dinov2 if s.verdict else 0.0, s.order))

    @cached_property
    def scenes(self) -> list[str]:
        return sorted({p.scene for p in self.prompts}, key=scene_order)

    def worst(self, model: str) -> tuple[list[Shot], bool]:
        """A model card's strip: its worst images when its scores may be shown, else its first ones (and False)."""
        own = [s for s in self.finder if s.model.name == model]
        return own[:WORST_SHOWN], any(s.verdict for s in own)

    def finder_pages(self, models: Sequence[GalleryModel]) -> list[FinderPage]:
        """The finder, one page per model and subject count, each in the finder's order, refusal tiles last."""
        pages = []
        for model in models:
            own = [s for s in self.finder if s.model.name == model.name]
            refused = self.refusals.get(model.name, [])
            for n in sorted({s.n_subjects for s in own + refused}):
                pages.append(FinderPage(model, n, [s for s in own if s.n_subjects == n]
                                        + [s for s in refused if s.n_subjects == n]))
        return pages


def model_records(folder: Path) -> dict[tuple[int, int], dict[str, Any]]:
    """A model's manifest lines by (prompt id, seed); lines whose image is missing or outside the folder are dropped."""
    records = {}
    root = folder.resolve()
    for record in Manifest(folder).records():
        try:
            image = (folder / str(record["image"])).resolve()
            key = (int(record["prompt_id"]), int(record["seed"]))
        except (KeyError, TypeError, ValueError) as error:
            raise BenchError(f"{folder / 'manifest.jsonl'}: a line lacks a usable image/prompt_id/seed ({error})") \
                from error
        if image.is_relative_to(root) and image.is_file():
            records[key] = {**record, "_path": image}
    return records


def matched_share(rows: Sequence[dict[str, str]]) -> float | None:
    """One image's matched SCR at COLLAPSE_TAU: subjects whose matched crop is below it or missing; None when the
    rows were not scored at instance level."""
    if not rows or any(str(row.get("n_detections", "")) == "" for row in rows):
        return None
    collapsed = sum(row.get("matched_dinov2", "") == "" or float(row["matched_dinov2"]) < COLLAPSE_TAU for row in rows)
    return collapsed / len(rows)


def image_verdicts(folder: Path) -> dict[tuple[int, int], Verdict]:
    """Per image (prompt id, seed), from scores.csv: what the gallery shows and sorts by."""
    path = folder / "scores.csv"
    if not path.is_file():
        return {}
    rows = read_csv(path)
    by_image: dict[tuple[int, int], list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_image[(int(row["prompt_id"]), int(row["seed"]))].append(row)
    means = image_scores(rows, "dinov2")
    return {image: Verdict(means[image], sum(float(r["dinov2"]) < COLLAPSE_TAU for r in group), matched_share(group),
                           missing_count(group))
            for image, group in by_image.items()}


def missing_count(rows: Sequence[dict[str, str]]) -> int | None:
    """Subjects of one image left without a detected person/animal of their kind; None when detection did not run."""
    if not rows or any(str(row.get("n_detections", "")) == "" for row in rows):
        return None
    return sum(row.get("matched_dinov2", "") == "" for row in rows)


def refusal_tiles(folder: Path, model: GalleryModel, made: set[tuple[int, int]]) -> list[Shot]:
    """One tile per job the provider answered without an image (and that no image has since replaced)."""
    tiles = []
    for line in Refusals(folder).read():
        try:
            key = (int(line["prompt_id"]), int(line["seed"]))
            n = int(line["n_subjects"])
        except (KeyError, TypeError, ValueError):
            continue
        if key not in made:
            tiles.append(Shot(model, key[0], key[1], n, str(line.get("scene", "")), f"gallery-n{n}.html",
                              refusal=line))
    return sorted(tiles, key=lambda s: (s.n_subjects, s.prompt_id, s.seed))


def publish_references(pool: dict[str, Subject] | None, store: ImageStore) -> dict[str, dict[str, Any]]:
    """Publish every subject reference; return what a template needs per subject id."""
    subjects: dict[str, dict[str, Any]] = {}
    for subject in (pool or {}).values():
        image = store.publish(subject.image)
        subjects[subject.id] = {"id": subject.id, "phrase": subject.phrase, "kind": subject.kind,
                                "source": subject.source, "license": subject.license, "full": image.full,
                                "thumb": image.thumb, "width": image.width, "height": image.height}
    return subjects


def casting_of(record: dict[str, Any]) -> tuple[str, str]:
    return str(record.get("pool") or NOT_RECORDED), str(record.get("casting") or NOT_RECORDED)


def make_shot(model: GalleryModel, record: dict[str, Any] | None, prompt: GalleryPrompt, seed: int,
              verdicts: dict[tuple[int, int], Verdict], store: ImageStore) -> Shot:
    shot = Shot(model, prompt.id, seed, prompt.n_subjects, prompt.scene, prompt.href)
    if record is None:
        shot.note = f"no image for seed {seed}"
        return shot
    image = store.publish(record["_path"])
    shot.full, shot.thumb, shot.width, shot.height = image.full, image.thumb, image.width, image.height
    shot.variants = image.variants
    if record.get("sent_prompt") and record["sent_prompt"] != record.get("prompt"):
        shot.sent_prompt = str(record["sent_prompt"])
    if model.fence:
        shot.note = f"scored with {model.fence} backbones: no score shown"
    else:
        shot.verdict = verdicts.get((prompt.id, seed))
    return shot


Records = dict[str, dict[int, dict[str, Any]]]  # model -> seed -> manifest line


def by_casting(per_model: dict[str, dict[tuple[int, int], dict[str, Any]]]) -> dict[tuple[str, str, int], Records]:
    """Manifest lines grouped by (pool, casting, prompt id): one gallery entry each, one set of references."""
    keyed: dict[tuple[str, str, int], Records] = defaultdict(lambda: defaultdict(dict))
    for name, records in per_model.items():
        for (pid, seed), record in records.items():
            keyed[(*casting_of(record), pid)][name][seed] = record
    return keyed


def make_prompt(key: tuple[str, str, int], by_model: Records, main: bool, subjects: dict[str, dict[str, Any]],
                site_pool: str | None) -> GalleryPrompt:
    """One entry, without its images yet. Prompts of the main casting keep the short anchor `p<id>`; references
    are shown only when the entry's pool is the one the site was given."""
    pool, casting, pid = key
    first = next(iter(next(iter(by_model.values())).values()))
    n = int(first.get("n_subjects") or len(first.get("subjects") or []))
    known = site_pool is None or pool in (site_pool, NOT_RECORDED)
    return GalleryPrompt(
        id=pid, anchor=f"p{pid}" if main else f"p{pid}-{slug(casting)}", page=f"gallery-n{n}.html", n_subjects=n,
        scene=str(first.get("scene", "")), prompt=str(first.get("prompt", "")), pool=pool, casting=casting,
        subjects=[subjects[s] if known and s in subjects else {"id": s, "phrase": "", "full": None}
                  for s in first.get("subjects") or []],
        seeds=sorted({seed for seeds in by_model.values() for seed in seeds}))


def build_gallery(results: Path, models: Sequence[GalleryModel], subjects: dict[str, dict[str, Any]],
                  store: ImageStore, site_pool: str | None) -> Gallery:
    """Gallery entries for every (casting, prompt) any model made, every seed, images published through `store`.

    `site_pool` is the id of the pool whose references `subjects` holds; other pools' prompts show no references.
    """
    per_model = {m.name: model_records(Path(results) / "models" / m.name) for m in models}
    verdicts = {m.name: {} if m.fence else image_verdicts(Path(results) / "models" / m.name) for m in models}
    keyed = by_casting(per_model)
    usual = Counter(key[:2] for key, by_model in keyed.items() for seeds in by_model.values() for _ in seeds)
    main = usual.most_common(1)[0][0] if usual else None
    prompts = [make_prompt(key, by_model, key[:2] == main, subjects, site_pool) for key, by_model in keyed.items()]
    prompts.sort(key=lambda p: (p.n_subjects, p.id, (p.pool, p.casting) != main, p.pool, p.casting))
    for prompt in prompts:
        by_model = keyed[(prompt.pool, prompt.casting, prompt.id)]
        prompt.rows = [(model, [make_shot(model, by_model[model.name].get(seed), prompt, seed, verdicts[model.name],
                                          store) for seed in prompt.seeds])
                       for model in models if model.name in by_model]
    for order, shot in enumerate(s for p in prompts for _, row in p.rows for s in row):
        shot.order = order
    for before, after in zip(prompts, prompts[1:]):
        before.next, after.prev = after.href, before.href
    castings = Counter((p.pool, p.casting) for p in prompts for _, row in p.rows for s in row if s.full)
    refusals = {m.name: refusal_tiles(Path(results) / "models" / m.name, m, set(per_model[m.name])) for m in models}
    refused = {(tile.model.name, tile.prompt_id, tile.seed): tile.refusal for tiles in refusals.values()
               for tile in tiles}
    for shot in (s for p in prompts for _, row in p.rows for s in row if not s.full):
        shot.refusal = refused.get((shot.model.name, shot.prompt_id, shot.seed))
    return Gallery(prompts, [(pool, casting, count) for (pool, casting), count in castings.most_common()],
                   {name: tiles for name, tiles in refusals.items() if tiles})
