"""`collapsebench weights pull | check` against a hub on 127.0.0.1 (tests/fake_hub.py), never the network.

The hub library is not mocked: it makes its real requests to the fake hub (`endpoint=` in process,
HF_ENDPOINT in a subprocess), so these tests also pin down the protocol it speaks.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from fake_hub import FakeHub, closed_port_url

from collapsebench.cli import main
from collapsebench.core.errors import BenchError
from collapsebench.models.weights import WeightsPin
from collapsebench.weights_pull import (
    Needed,
    check_weights,
    needed_weights,
    pull_weights,
    read_lock,
)

MIB = 1024 * 1024
CONFIG = b'{"model_type": "tiny"}'


def weights_bytes(size: int, seed: int = 0) -> bytes:
    """Incompressible, distinct content (a resumed transfer that restarted in the wrong place would not match)."""
    blocks, counter = [], 0
    while sum(map(len, blocks)) < size:
        blocks.append(hashlib.sha256(f"{seed}-{counter}".encode()).digest() * 1024)
        counter += 1
    return b"".join(blocks)[:size]


def snapshot_file(cache: Path, repo: str, commit: str, name: str) -> Path:
    return cache / f"models--{repo.replace('/', '--')}" / "snapshots" / commit / name


def states(needs: list[Needed], cache: Path, lock: Path) -> list[str]:
    return [status.state for status in check_weights(needs, cache, lock)]


@pytest.fixture
def hub():
    with FakeHub().serve() as served:
        yield served


def test_pull_fills_the_cache_and_check_sees_the_difference(hub: FakeHub, tmp_path: Path) -> None:
    cache, lock = tmp_path / "hub", tmp_path / "weights.lock.json"
    pinned = hub.add("org/pinned", {"config.json": CONFIG, "model.safetensors": weights_bytes(50_000)})
    first = hub.add("org/unpinned", {"config.json": CONFIG, "model.safetensors": weights_bytes(40_000, seed=1)})
    needs = [Needed(WeightsPin("org/pinned", pinned), ["model a"]), Needed(WeightsPin("org/unpinned"), ["model b"])]
    assert states(needs, cache, lock) == ["missing", "missing"]
    assert "not locked" in check_weights(needs, cache, lock)[1].line()

    pull_weights(needs, cache, lock, endpoint=hub.url)
    assert states(needs, cache, lock) == ["ok", "ok"]
    assert snapshot_file(cache, "org/pinned", pinned, "model.safetensors").read_bytes() == weights_bytes(50_000)
    assert read_lock(lock)["org/unpinned"]["commit"] == first  # the commit `main` resolved to, recorded
    assert (cache / "models--org--unpinned" / "refs" / "main").read_text() == first  # what an offline load reads
    assert "recorded in the lock file" in check_weights(needs, cache, lock)[1].line()

    hub.add("org/unpinned", {"config.json": b"{}", "model.safetensors": b"newer"})  # `main` moves on the hub
    hub.requests.clear()
    locked = lock.read_text()
    pull_weights(needs, cache, lock, endpoint=hub.url)
    assert ("GET", f"/api/models/org/unpinned/revision/{first}", None) in hub.requests  # the locked commit, not main
    assert not [path for method, path, _ in hub.requests if method == "GET" and "/resolve/" in path]  # all cached
    assert lock.read_text() == locked  # unchanged: no churn in a committed file


def test_a_transfer_cut_mid_file_is_resumed_from_where_it_stopped(hub: FakeHub, tmp_path: Path) -> None:
    content = weights_bytes(12 * MIB)
    commit = hub.add("org/big", {"model.safetensors": content})
    hub.drop_once["model.safetensors"] = 11 * MIB  # the hub library writes in 10 MiB chunks: one reached disk
    pull_weights([Needed(WeightsPin("org/big", commit), ["model a"])], tmp_path / "hub", tmp_path / "lock.json",
                 endpoint=hub.url)
    ranges = [header for method, path, header in hub.requests if method == "GET" and header]
    assert ranges == [f"bytes={10 * MIB}-"]
    assert snapshot_file(tmp_path / "hub", "org/big", commit, "model.safetensors").read_bytes() == content


def test_a_killed_pull_is_reported_incomplete_and_a_rerun_completes_it(hub: FakeHub, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    cache, lock, models = tmp_path / "hub", tmp_path / "weights.lock.json", tmp_path / "models"
    base = hub.add("org/base", {"config.json": CONFIG, "weights.safetensors": weights_bytes(30_000)})
    content = weights_bytes(12 * MIB, seed=2)
    lora = hub.add("org/lora", {"config.json": CONFIG, "lora.safetensors": content})
    model = yaml.safe_load((REPO / "models/mosaic/model.yaml").read_text())
    model["settings"]["base"] = {"repo": "org/base", "revision": base}
    model["settings"]["lora"] = {"repo": "org/lora", "revision": lora, "weight_name": "lora.safetensors"}
    (models / "mosaic").mkdir(parents=True)
    (models / "mosaic" / "model.yaml").write_text(yaml.safe_dump(model))
    (tmp_path / "params.yaml").write_text("models: [mosaic]\n")
    cli = ["--params", str(tmp_path / "params.yaml"), "--models-dir", str(models), "weights"]
    where = ["mosaic", "--cache", str(cache), "--lock", str(lock)]
    assert main([*cli, "check", *where]) == 1

    hub.stall["lora.safetensors"] = 11 * MIB
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    env.pop("HF_HUB_OFFLINE", None)
    pull = subprocess.Popen([sys.executable, "-m", "collapsebench.cli", *cli, "pull", *where], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert hub.stalled.wait(30), "the pull never reached the big file"
        deadline = time.monotonic() + 10
        while not snapshot_file(cache, "org/lora", lora, "config.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        pull.kill()  # like a power cut: no clean-up runs
        pull.wait()
    hub.release.set()
    capsys.readouterr()
    assert main([*cli, "check", *where]) == 1
    assert "incomplete" in capsys.readouterr().out

    del hub.stall["lora.safetensors"]
    hub.requests.clear()
    pull_weights(needed_weights({}, models, ["mosaic"], False), cache, lock, endpoint=hub.url)
    assert snapshot_file(cache, "org/lora", lora, "lora.safetensors").read_bytes() == content
    fetched = [path.rsplit("/", 1)[1] for method, path, _ in hub.requests if method == "GET" and "/resolve/" in path]
    assert fetched == ["lora.safetensors"]  # what the killed pull completed is kept
    assert main([*cli, "check", *where]) == 0


def test_a_gated_repository_says_how_to_accept_its_licence_and_log_in(hub: FakeHub, tmp_path: Path) -> None:
    commit = hub.add("org/gated", {"config.json": CONFIG})
    hub.gated.add("org/gated")
    with pytest.raises(BenchError) as raised:
        pull_weights([Needed(WeightsPin("org/gated", commit), ["model a"])], tmp_path / "hub", tmp_path / "lock.json",
                     endpoint=hub.url)
    message = str(raised.value)
    assert "is gated" in message and f"{hub.url}/org/gated" in message and "accept its licence" in message
    assert "hf auth login" in message and "HF_TOKEN" in message


def test_no_network_is_said_at_once_with_the_air_gapped_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    needs = [Needed(WeightsPin("org/any", "a" * 40), ["model a"])]
    started = time.monotonic()
    with pytest.raises(BenchError, match="cannot reach the Hugging Face hub for org/any") as raised:
        pull_weights(needs, tmp_path / "hub", tmp_path / "lock.json", endpoint=closed_port_url())
    assert time.monotonic() - started < 10
    assert "copy (or mount) its cache folder" in str(raised.value) and "HF_HUB_OFFLINE=1" in str(raised.value)

    with socket.socket() as silent:  # accepts connections, never answers: a black-holed network
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "1")
        started = time.monotonic()
        with pytest.raises(BenchError, match="cannot reach the Hugging Face hub"):
            pull_weights(needs, tmp_path / "hub", tmp_path / "lock.json",
                         endpoint=f"http://127.0.0.1:{silent.getsockname()[1]}")
        assert time.monotonic() - started < 10

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BenchError, match="HF_HUB_OFFLINE is set"):
        pull_weights(needs, tmp_path / "hub", tmp_path / "lock.json", endpoint=closed_port_url())


def test_not_enough_disk_is_refused_before_anything_downloads(hub: FakeHub, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    commit = hub.add("org/big", {"config.json": CONFIG, "model.safetensors": weights_bytes(200_000)})
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**12, 10**12 - 1000, 1000))
    with pytest.raises(BenchError, match=r"0\.00 GB to download \(org/big .*only 0\.00 GB free.*nothing was downloaded"):
        pull_weights([Needed(WeightsPin("org/big", commit), ["model a"])], tmp_path / "hub", tmp_path / "lock.json",
                     endpoint=hub.url)
    assert not [path for _, path, _ in hub.requests if "/resolve/" in path]
    assert not (tmp_path / "hub" / "models--org--big").exists()


def test_the_needed_checkpoints_come_from_model_files_and_params_each_once() -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    needs = needed_weights(params, REPO / "models", ["mosaic", "xverse"], scoring=True)
    users = {need.pin.repo: need.users for need in needs}
    assert users["black-forest-labs/FLUX.1-dev"] == ["model mosaic", "model xverse"]
    assert users["google/owlv2-base-patch16-ensemble"] == ["scoring detector"]
    assert {"facebook/dinov2-base", "facebook/dino-vits16", "openai/clip-vit-base-patch32"} <= set(users)
    assert needed_weights({**params, "models": ["collage"]}, REPO / "models", [], scoring=False) == []  # smoke
