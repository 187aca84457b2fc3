"""Casting: a seeded, documented assignment of pool subjects to prompt slots, frozen per pool, and the 77-token
rule counted with the real CLIP BPE vocabulary (open_clip's bpe_simple_vocab_16e6)."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import REPO, make_pool

from collapsebench.benchmark.casting import (
    MAX_PHRASE_TOKENS,
    cast,
    cast_suite,
    casting_path,
    castings_dir,
    load_instance,
    pool_id,
    token_problems,
    usage_counts,
    write_casting,
)
from collapsebench.benchmark.pool import load_pool
from collapsebench.benchmark.suite import ANY, load_prompts
from collapsebench.core.clip_tokens import CLIP_MAX_TOKENS, clip_tokenizer, count_tokens
from collapsebench.core.errors import BenchError

PROMPTS = REPO / "benchmark" / "prompts.yaml"
PERSONS = ["a young woman", "an old man", "a bearded man", "a girl with glasses", "a tall boy", "a bald woman",
           "an elderly navy officer", "a red-haired woman", "a man in a hat", "a red-haired young woman"]
ANIMALS = ["a tabby cat", "a black labrador", "a white rabbit", "a brown owl", "a grey parrot", "a small pony"]


def demo_pool(target: Path) -> Path:
    """The shipped demo pool, read straight from the in-repo DVC remote (data/ itself is not in git)."""
    remote = REPO / ".dvc" / "demo-remote" / "files" / "md5"
    digest = yaml.safe_load((REPO / "data.dvc").read_text())["outs"][0]["md5"]
    for entry in json.loads((remote / digest[:2] / digest[2:]).read_text()):
        destination = target / entry["relpath"]
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(remote / entry["md5"][:2] / entry["md5"][2:], destination)
    return target


def big_pool(folder: Path, count: int = 60) -> dict:
    """A synthetic 60-subject pool with phrases of up to the whole budget (6 CLIP tokens)."""
    make_pool(folder, count=count)
    document = yaml.safe_load((folder / "subjects.yaml").read_text())
    for number, entry in enumerate(document["subjects"]):
        phrases = ANIMALS if entry["kind"] == "animal" else PERSONS
        entry["phrase"] = phrases[number % len(phrases)]
    (folder / "subjects.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return load_pool(folder)


def test_real_clip_bpe_gives_the_openai_token_ids() -> None:
    assert clip_tokenizer()("a photo of a cat")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert len(clip_tokenizer()) == 49408


def test_casting_is_deterministic_distinct_kind_respecting_and_balanced(tmp_path: Path) -> None:
    pool = big_pool(tmp_path / "pool")
    prompts = load_prompts(PROMPTS)
    first, again = cast(prompts, pool), cast(prompts, pool)
    assert first == again
    for prompt in prompts:
        subjects = first[prompt.id]
        assert len(set(subjects)) == prompt.n_subjects
        for subject, kind in zip(subjects, prompt.kinds):
            assert kind == ANY or pool[subject].kind == kind, (prompt.id, subject, kind)
    usage = usage_counts(first)
    assert set(usage) == set(pool)  # every subject is used
    assert max(usage.values()) - min(usage.values()) <= 2  # 450 slots over 60 subjects: 7 or 8 each, give or take
    assert cast(prompts, pool, seed=1) != first  # the seed matters


def test_a_kind_the_pool_cannot_supply_is_a_clear_error(tmp_path: Path) -> None:
    make_pool(tmp_path / "pool", count=8)
    document = yaml.safe_load((tmp_path / "pool/subjects.yaml").read_text())
    for entry in document["subjects"]:
        entry["kind"] = "person"
    (tmp_path / "pool/subjects.yaml").write_text(yaml.safe_dump(document))
    with pytest.raises(BenchError, match=r"prompt 12 needs 2 distinct subjects \(\{'person': 1, 'animal': 1\}"):
        cast(load_prompts(PROMPTS), load_pool(tmp_path / "pool"))


def test_the_77_token_rule_holds_for_the_demo_pool_and_a_60_subject_pool(tmp_path: Path) -> None:
    prompts = load_prompts(PROMPTS)
    for pool in (load_pool(demo_pool(tmp_path / "demo")), big_pool(tmp_path / "big")):
        assert token_problems(prompts, pool) == []
        instance = cast_suite(PROMPTS, pool)
        counts = {p.id: count_tokens(p.natural(pool)) for p in instance.prompts}
        assert max(counts.values()) <= CLIP_MAX_TOKENS, counts
    # and the budget is what makes it hold: a phrase one token too long is named
    pool = big_pool(tmp_path / "long")
    victim = next(iter(pool.values()))
    long_pool = {**pool, victim.id: victim.__class__(**{**victim.__dict__, "phrase": "a very tall and old bearded man"})}
    assert count_tokens(long_pool[victim.id].phrase) - 2 > MAX_PHRASE_TOKENS
    assert any(victim.id in problem for problem in token_problems(prompts, long_pool))


def test_the_shipped_demo_pool_has_its_frozen_casting(tmp_path: Path) -> None:
    data = demo_pool(tmp_path / "demo")
    instance = load_instance(PROMPTS, data)
    assert instance.casting.frozen
    assert casting_path(castings_dir(PROMPTS), pool_id(instance.pool)).is_file()
    assert instance.casting.assignment == cast(load_prompts(PROMPTS), instance.pool)  # the procedure still agrees


def test_a_frozen_casting_is_used_verified_and_never_replaced(tmp_path: Path) -> None:
    bench = tmp_path / "benchmark"
    bench.mkdir()
    shutil.copy(PROMPTS, bench / "prompts.yaml")
    pool = big_pool(tmp_path / "pool")
    assert not cast_suite(bench / "prompts.yaml", pool).casting.frozen
    path = write_casting(castings_dir(bench / "prompts.yaml"), load_prompts(PROMPTS), pool, tmp_path / "pool")
    instance = cast_suite(bench / "prompts.yaml", pool)
    assert instance.casting.frozen and path.name == f"{pool_id(pool)}.yaml"
    assert instance.labels == {"pool": pool_id(pool), "casting": instance.casting.digest}

    document = yaml.safe_load(path.read_text())
    kinds = {p.id: p.kinds for p in load_prompts(PROMPTS)}
    animal_slot = next(pid for pid, k in kinds.items() if k[1] == "animal")
    person = next(s for s in pool.values() if s.kind == "person" and s.id not in document["casting"][animal_slot])
    document["casting"][animal_slot][1] = person.id  # a person in a slot that needs an animal
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(BenchError, match=f"prompt {animal_slot} slot 2: needs a animal"):
        cast_suite(bench / "prompts.yaml", pool)
    with pytest.raises(BenchError, match="a different casting is already frozen"):
        write_casting(castings_dir(bench / "prompts.yaml"), load_prompts(PROMPTS), pool, tmp_path / "pool")


def test_the_pool_id_follows_the_reference_bytes(tmp_path: Path) -> None:
    pool_dir = make_pool(tmp_path / "pool")
    before = pool_id(load_pool(pool_dir))
    (pool_dir / "subjects" / "S001.png").write_bytes((pool_dir / "subjects" / "S002.png").read_bytes())
    assert pool_id(load_pool(pool_dir)) != before


def test_usage_of_the_demo_pool_is_balanced(tmp_path: Path) -> None:
    instance = load_instance(PROMPTS, demo_pool(tmp_path / "demo"))
    usage = Counter(s for p in instance.prompts for s in p.subjects)
    assert len(usage) == 16 and max(usage.values()) - min(usage.values()) <= 2


def test_the_readme_token_counts_of_the_demo_pool(tmp_path: Path) -> None:
    instance = load_instance(PROMPTS, demo_pool(tmp_path / "demo"))
    by_n: dict[int, list[int]] = {}
    for prompt in instance.prompts:
        by_n.setdefault(prompt.n_subjects, []).append(count_tokens(prompt.natural(instance.pool)))
    assert (min(by_n[2]), max(by_n[2]), min(by_n[10]), max(by_n[10])) == (16, 24, 52, 57)
    assert "16-24 tokens at N=2 up to 52-57 at N=10" in (REPO / "README.md").read_text().replace("\n  ", " ")
