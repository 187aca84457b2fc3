"""How the report treats refusals: answered jobs, never collapses, outside every denominator, and no bar to a rank."""

from __future__ import annotations

import pytest

from collapsebench.benchmark.suite import Prompt
from collapsebench.core.refusals import Refusals
from collapsebench.reporting.breakdown import add_tie_ranks, cell_summary
from collapsebench.reporting.inputs import coverage


def scores(model: str, prompts: list[int], dinov2: float) -> list[dict[str, str]]:
    """Two subjects per image, seed 0 only, one image per prompt."""
    return [{"model": model, "prompt_id": str(p), "seed": "0", "n_subjects": "2", "scene": "neutral",
             "slot": str(slot), "subject_id": f"S{slot}", "dinov2": str(dinov2 + 0.01 * p), "dino": "0.5",
             "clip_i": "0.5", "clip_t": "0.3"} for p in prompts for slot in (1, 2)]


def cell(model: str, prompts: list[int], dinov2: float) -> dict:
    return {"model": model, "kind": "model", "backbones": "smoke", "pool": "p", "n_subjects": 2,
            "source": "reproduced", **cell_summary(scores(model, prompts, dinov2), ["dinov2", "scr_0.4"], 100, 1)}


def test_a_row_with_refusals_is_ranked_on_the_prompts_every_model_has_images_of() -> None:
    every = list(range(1, 16))
    table = [cell("open", every, 0.3), cell("closed", [p for p in every if p != 3], 0.6)]
    add_tie_ranks(table, refused={"closed": {(3, 0, 2)}})
    ranks = {row["model"]: (row.get("rank_scr_0.4"), row.get("rank_note")) for row in table}
    assert ranks == {"open": (2, None), "closed": (1, None)}

    unexplained = [cell("open", every, 0.3), cell("closed", [p for p in every if p != 3], 0.6)]
    add_tie_ranks(unexplained)  # a missing image that is not a refusal still breaks the pairing
    assert "pairing broken" in next(r for r in unexplained if r["model"] == "closed")["rank_note"]


def test_coverage_counts_final_refusals_as_answered_and_errors_as_missing(tmp_path) -> None:
    prompts = [Prompt(id=i, n_subjects=2, scene="neutral", template="{1} and {2}", kinds=("any", "any"))
               for i in (1, 2, 3)]
    folder = Refusals(tmp_path)
    base = {"seed": 0, "n_subjects": 2, "scene": "neutral", "detail": "", "provider": "bfl", "request_date": "d"}
    folder.append({**base, "key": "p02_s0", "prompt_id": 2, "reason": "content_policy"})
    folder.append({**base, "key": "p03_s0", "prompt_id": 3, "reason": "error"})
    item = coverage("closed", scores("closed", [1], 0.5), prompts, [0], folder.final())
    assert not item.complete and item.missing == {2: ("p03_s0",)} and item.refused == {2: ("p02_s0",)}
    assert item.refusal_rate(2) == pytest.approx(1 / 3)
    folder.append({**base, "key": "p03_s0", "prompt_id": 3, "reason": "no_image"})  # the rerun's final answer
    item = coverage("closed", scores("closed", [1], 0.5), prompts, [0], folder.final())
    assert item.complete and item.describe() == "complete: 1 images, 2 refused"
