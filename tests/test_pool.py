"""`collapsebench pool import`: subject folders become stable IDs; a re-import never renumbers."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from collapsebench.benchmark.pool import load_pool
from collapsebench.cli import main


def subject_folders(root: Path, names: list[str]) -> Path:
    for index, name in enumerate(names):
        folder = root / name
        folder.mkdir(parents=True)
        Image.new("RGB", (300 + index, 200), (20 * index, 100, 50)).save(folder / "b.jpg")
        Image.new("RGB", (64, 64), (0, 0, 0)).save(folder / "z_second_view.png")
    return root


def test_import_assigns_stable_ids_and_square_references(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "data"
    source = subject_folders(tmp_path / "xverse", ["woman_with_red_hair", "old_man"])
    (source / "old_man" / "phrase.txt").write_text("an old man with a gray beard\n")
    assert main(["pool", "import", str(source), "--data", str(data), "--kind", "person", "--license", "CC-BY-4.0"]) == 0
    pool = load_pool(data)
    assert [s.id for s in pool.values()] == ["S001", "S002"]
    assert pool["S001"].phrase == "an old man with a gray beard"  # from phrase.txt
    assert pool["S002"].phrase == "woman with red hair"  # from the folder name
    with Image.open(pool["S002"].image) as image:
        assert image.size == (512, 512)

    more = subject_folders(tmp_path / "cosmisc", ["tabby_cat"])
    subject_folders(source, ["new_person"])
    assert main(["pool", "import", str(source), "--data", str(data), "--kind", "person", "--license", "CC-BY-4.0"]) == 0
    assert main(["pool", "import", str(more), "--data", str(data), "--kind", "animal", "--license", "CC0-1.0"]) == 0
    pool = load_pool(data)
    assert {s.id: s.source for s in pool.values()} == {
        "S001": "xverse/old_man", "S002": "xverse/woman_with_red_hair", "S003": "xverse/new_person",
        "S004": "cosmisc/tabby_cat"}
    assert pool["S004"].kind == "animal"
    assert "1 new subjects (S004..S004)" in capsys.readouterr().out


def test_import_names_a_folder_without_images(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "src" / "empty_subject").mkdir(parents=True)
    code = main(["pool", "import", str(tmp_path / "src"), "--data", str(tmp_path / "d"), "--kind", "person",
                 "--license", "x"])
    assert code == 2
    assert "empty_subject: no reference image" in capsys.readouterr().err
