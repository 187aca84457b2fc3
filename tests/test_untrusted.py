"""The trust boundary on the host: what leaves a folder a model container (or an artifact) wrote.

Each test plants what a hostile container could (a symlink to a host file, a hard link, a FIFO, a link where a
later run's output folder goes) and checks that nothing of the host is copied, chowned or mounted, and that the
error names the path.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from collapsebench.cli import main
from collapsebench.core.containers import container_user
from collapsebench.core.errors import BenchError
from collapsebench.core.untrusted import UntrustedTreeError, check_tree, copy_tree, read_file, real_dir


@pytest.fixture
def host_file(tmp_path: Path) -> Path:
    secret = tmp_path / "host" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("a host file that must never be published\n")
    return secret


def output_folder(tmp_path: Path) -> Path:
    out = tmp_path / "out" / "results" / "models" / "m"
    (out / "images").mkdir(parents=True)
    (out / "images" / "p01_s0.png").write_bytes(b"png bytes")
    (out / "manifest.jsonl").write_text("{}\n")
    return out


def test_regular_files_are_copied_with_their_folders(tmp_path: Path) -> None:
    out = output_folder(tmp_path)
    copied = copy_tree(out, tmp_path / "staged")
    assert copied == ["images/p01_s0.png", "manifest.jsonl"]
    assert (tmp_path / "staged/images/p01_s0.png").read_bytes() == b"png bytes"
    assert copy_tree(out, tmp_path / "only", ["manifest.jsonl"]) == ["manifest.jsonl"]


@pytest.mark.parametrize("plant", ["symlink", "dir-symlink", "hardlink", "fifo"])
def test_links_and_special_files_are_refused_and_nothing_is_copied(tmp_path: Path, host_file: Path,
                                                                   plant: str) -> None:
    out = output_folder(tmp_path)
    planted = out / "images" / "zz.png"
    if plant == "symlink":
        planted.symlink_to(host_file)
    elif plant == "dir-symlink":
        planted.symlink_to(host_file.parent, target_is_directory=True)
    elif plant == "hardlink":
        os.link(host_file, planted)
    else:
        os.mkfifo(planted)
    with pytest.raises(UntrustedTreeError, match=f"{planted}: is a"):
        copy_tree(out, tmp_path / "staged")
    assert not (tmp_path / "staged").exists()  # checked first: not even the regular files were copied


def test_a_source_folder_that_is_itself_a_link_is_refused(tmp_path: Path, host_file: Path) -> None:
    link = tmp_path / "out-link"
    link.symlink_to(host_file.parent, target_is_directory=True)
    with pytest.raises(UntrustedTreeError, match="cannot be opened as a real folder"):
        check_tree(link)


def test_one_file_is_read_only_if_it_is_a_regular_file(tmp_path: Path, host_file: Path) -> None:
    out = output_folder(tmp_path)
    assert read_file(out, "manifest.jsonl") == b"{}\n"
    (out / "provenance.json").symlink_to(host_file)
    with pytest.raises(UntrustedTreeError, match="provenance.json: is a symlink"):
        read_file(out, "provenance.json")


def test_a_planted_link_where_an_output_folder_goes_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    results = tmp_path / "results"
    (results / "models" / "m" / "shards").mkdir(parents=True)
    host_dir = tmp_path / "host-dir"
    host_dir.mkdir()
    (results / "models" / "m" / "shards" / "0-of-4").symlink_to(host_dir, target_is_directory=True)
    with pytest.raises(UntrustedTreeError, match="0-of-4: is a symlink where a folder belongs"):
        real_dir(results / "models" / "m" / "shards" / "0-of-4" / "images", results, create=True)
    assert list(host_dir.iterdir()) == []
    made = real_dir(results / "models" / "n" / "shards" / "1-of-4", results, create=True)
    assert made.is_dir() and not made.is_symlink()


def test_the_container_user_is_never_given_a_folder_that_is_a_link(tmp_path: Path) -> None:
    host_dir = tmp_path / "host-dir"
    host_dir.mkdir()
    link = tmp_path / "out"
    link.symlink_to(host_dir, target_is_directory=True)
    with pytest.raises(BenchError, match="a symlink where a writable folder belongs"):
        container_user([link])
    assert host_dir.stat().st_uid == os.getuid()


def test_docker_generate_refuses_a_planted_shard_link_and_starts_nothing(workdir: Path, capsys) -> None:
    host_dir = workdir.parent / "host-dir"
    host_dir.mkdir()
    (workdir / "results/models/collage/shards").mkdir(parents=True)
    (workdir / "results/models/collage/shards/0-of-4").symlink_to(host_dir, target_is_directory=True)
    assert main(["generate", "collage", "--runner", "docker", "--shard", "0/4"]) == 2
    assert "0-of-4: is a symlink where a folder belongs" in capsys.readouterr().err
    assert list(host_dir.iterdir()) == [] and host_dir.stat().st_uid == os.getuid()


def test_docker_generate_starts_no_container_when_nothing_is_left(workdir: Path, capsys,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect: the merge job's fill-in `generate MODEL` always started the container, which then had the model
    folder mounted writable, after the images were made and before they were staged."""
    assert main(["generate", "collage"]) == 0  # every job made (by the local runner)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{workdir}/no-engine.sock")  # any connection attempt would fail
    capsys.readouterr()
    assert main(["generate", "collage", "--runner", "docker"]) == 0
    assert "0 made, 75 already done (no container started)" in capsys.readouterr().out
    planted = workdir / "results/models/collage/images/zz.png"
    planted.symlink_to("/etc/hostname")  # and a folder holding a planted link is an error, not "done"
    assert main(["generate", "collage", "--runner", "docker"]) == 2
    assert f"{planted}: is a symlink" in capsys.readouterr().err
