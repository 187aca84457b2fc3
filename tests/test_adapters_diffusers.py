"""The `diffusers` adapter end to end on tiny random-weight pipelines of the real classes.

Each pipeline (Flux2Pipeline, Flux2KleinPipeline) is built in code with tiny
transformer / VAE / text-encoder configs and a tokenizer from an in-code
byte-level vocabulary, written with save_pretrained, and loaded by the adapter
with from_pretrained(folder, revision=...) exactly as real weights are. The
tiny text encoders have as many layers as the real ones' hidden-state taps
(30 and 27), so the pipelines run with their default arguments.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO, make_pool
from PIL import Image

from collapsebench.benchmark.casting import cast_suite
from collapsebench.benchmark.model_config import ModelConfig
from collapsebench.benchmark.pool import load_pool, load_reference
from collapsebench.benchmark.suite import make_jobs
from collapsebench.core.clip_tokens import byte_symbols
from collapsebench.core.errors import BenchError
from collapsebench.core.io import sha256_file
from collapsebench.core.manifest import Manifest
from collapsebench.generation.generate import run_generate
from collapsebench.models import get_adapter
from collapsebench.models.weights import WeightsPin, cached, resolve

REVISION = "0123456789abcdef0123456789abcdef01234567"
HIDDEN = 16
SIZE = 32
# A chat template of the shape both pipelines send: roles with typed text parts (Mistral) or plain text (Qwen).
TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{% if m['content'] is string %}{{ m['content'] }}"
            "{% else %}{% for c in m['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}"
            "{% endif %}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")


def byte_level_tokenizer(cls, specials: list[str], **kwargs):
    """A byte-level BPE tokenizer with no merges (one token per byte) plus special tokens, all in code."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {token: index for index, token in enumerate(specials)}
    for symbol in byte_symbols():
        vocab.setdefault(symbol, len(vocab))
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = cls(tokenizer_object=backend, **kwargs)
    tokenizer.chat_template = TEMPLATE
    return tokenizer


def tiny_transformer_and_vae():
    from diffusers import AutoencoderKLFlux2, Flux2Transformer2DModel

    torch.manual_seed(0)
    transformer = Flux2Transformer2DModel(
        patch_size=1, in_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
        joint_attention_dim=3 * HIDDEN, timestep_guidance_channels=256, axes_dims_rope=[4, 4, 4, 4])
    vae = AutoencoderKLFlux2(
        sample_size=32, in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(4, 4, 4), layers_per_block=1, latent_channels=1,
        norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False)
    return transformer, vae


def build_flux2(folder: Path) -> None:
    from diffusers import FlowMatchEulerDiscreteScheduler, Flux2Pipeline
    from transformers import (
        Mistral3Config,
        Mistral3ForConditionalGeneration,
        PreTrainedTokenizerFast,
    )

    tokenizer = byte_level_tokenizer(PreTrainedTokenizerFast, ["<unk>", "[IMG]", "<s>", "</s>", "<pad>"],
                                     unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    config = Mistral3Config(
        text_config={"model_type": "mistral", "vocab_size": len(tokenizer), "hidden_size": HIDDEN,
                     "intermediate_size": 32, "max_position_embeddings": 1024, "num_attention_heads": 2,
                     "num_hidden_layers": 30, "num_key_value_heads": 1, "head_dim": 8, "sliding_window": None,
                     "bos_token_id": 2, "eos_token_id": 3, "pad_token_id": 4},
        vision_config={"model_type": "pixtral", "hidden_size": HIDDEN, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "intermediate_size": 32, "image_size": 32, "patch_size": 8, "num_channels": 3},
        image_token_index=1, bos_token_id=2, eos_token_id=3, pad_token_id=4)
    torch.manual_seed(0)
    text_encoder = Mistral3ForConditionalGeneration(config)
    transformer, vae = tiny_transformer_and_vae()
    Flux2Pipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder,
                  tokenizer=tokenizer, transformer=transformer).save_pretrained(folder)


def build_flux2_klein(folder: Path) -> None:
    from diffusers import FlowMatchEulerDiscreteScheduler, Flux2KleinPipeline
    from transformers import Qwen2TokenizerFast, Qwen3Config, Qwen3ForCausalLM

    tokenizer = byte_level_tokenizer(Qwen2TokenizerFast, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                     eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    config = Qwen3Config(vocab_size=len(tokenizer), hidden_size=HIDDEN, intermediate_size=32, num_hidden_layers=27,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=8, max_position_embeddings=1024,
                         tie_word_embeddings=True)
    torch.manual_seed(0)
    text_encoder = Qwen3ForCausalLM(config)
    transformer, vae = tiny_transformer_and_vae()
    Flux2KleinPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder,
                       tokenizer=tokenizer, transformer=transformer, is_distilled=True).save_pretrained(folder)


BUILDERS = {"Flux2Pipeline": build_flux2, "Flux2KleinPipeline": build_flux2_klein}


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def tiny_pipeline(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    folder = tmp_path_factory.mktemp(request.param)
    BUILDERS[request.param](folder)
    return request.param, folder


@pytest.fixture
def small_pool(tmp_path: Path) -> Path:
    """64 px references, the smallest the FLUX.2 pipelines accept: the test pool's 96 px would cost twice the time."""
    return make_pool(tmp_path / "data", size=64)


def tiny_config(pipeline_class: str, folder: Path, **settings) -> ModelConfig:
    settings = {"height": SIZE, "width": SIZE, "steps": 2, "guidance": 4.0, "device": "cpu", "dtype": "float32",
                **settings}
    raw = {"pipeline": {"class": pipeline_class, "repo": str(folder), "revision": REVISION}}
    return ModelConfig(name="tiny", display_name="tiny", kind="model", adapter="diffusers", runner="local",
                       settings=settings, raw=raw)


def test_adapter_generates_end_to_end_and_records_what_it_sent(tiny_pipeline, small_pool: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import diffusers

    pipeline_class, folder = tiny_pipeline
    cls = getattr(diffusers, pipeline_class)
    original, calls = cls.from_pretrained.__func__, []

    def spy(klass, *args, **kwargs):
        calls.append((args, kwargs))
        return original(klass, *args, **kwargs)

    monkeypatch.setattr(cls, "from_pretrained", classmethod(spy))
    pool = load_pool(small_pool)
    prompts = cast_suite(REPO / "benchmark/prompts.yaml", pool).prompts
    jobs = [job for job in make_jobs(prompts, [0]) if job.prompt.id in (1, 61)]  # 2 and 10 subjects
    out = tmp_path / "out"

    report = run_generate(tiny_config(pipeline_class, folder), jobs, pool, out)

    assert (report.made, report.failed) == (2, [])
    assert len(calls) == 1 and calls[0][0] == (str(folder),) and calls[0][1]["revision"] == REVISION
    records = {r["prompt_id"]: r for r in Manifest(out).records()}
    for job in jobs:
        record = records[job.prompt.id]
        assert record["sent_prompt"] == record["prompt"] == job.prompt.natural(pool)
        assert record["sent"]["references"] == list(job.prompt.subjects)
        assert record["sent"]["pipeline"] == pipeline_class
        assert (record["sent"]["num_inference_steps"], record["sent"]["guidance_scale"]) == (2, 4.0)
        assert record["model_revision"] == f"{folder}@{REVISION}"
        with Image.open(out / record["image"]) as image:
            assert image.size == (SIZE, SIZE)
    assert len(records[61]["sent"]["references"]) == 10


def test_same_seed_same_image_and_the_references_are_used(tiny_pipeline, small_pool: Path) -> None:
    pipeline_class, folder = tiny_pipeline
    pool = load_pool(small_pool)
    subjects = [pool["S001"], pool["S002"]]
    references = [load_reference(s) for s in subjects]
    adapter = get_adapter("diffusers", {**tiny_config(pipeline_class, folder).settings,
                                        "pipeline": {"class": pipeline_class, "repo": str(folder), "revision": REVISION}})
    adapter.load()

    def pixels(refs, seed):
        return adapter.generate("subject number 1 and subject number 2", subjects, refs, seed).image.tobytes()

    first = pixels(references, 0)
    assert pixels(references, 0) == first
    assert pixels(references, 1) != first
    assert pixels([Image.new("RGB", (64, 64), (255, 0, 0))] * 2, 0) != first


def test_bad_settings_and_missing_weights_are_clear_errors(tmp_path: Path) -> None:
    good = {"height": 32, "width": 32, "steps": 2, "guidance": 1.0}
    with pytest.raises(BenchError, match="pipeline"):
        get_adapter("diffusers", good)
    with pytest.raises(BenchError, match=r"call.references = 'image' is not an argument of OmniGenPipeline.__call__"):
        get_adapter("diffusers", {**good, "pipeline": {"class": "OmniGenPipeline", "repo": "a/b", "revision": REVISION}})
    with pytest.raises(BenchError, match="lack steps"):
        get_adapter("diffusers", {"height": 1, "width": 1, "guidance": 1,
                                  "pipeline": {"class": "Flux2Pipeline", "repo": "a/b", "revision": REVISION}})
    with pytest.raises(BenchError, match="40-hex"):
        get_adapter("diffusers", {**good, "pipeline": {"class": "Flux2Pipeline", "repo": "a/b", "revision": "main"}})

    pin = WeightsPin("black-forest-labs/FLUX.2-dev", REVISION)
    with pytest.raises(BenchError, match=f"hf download black-forest-labs/FLUX.2-dev --revision {REVISION}"):
        resolve(pin, cache_dir=tmp_path)
    assert not cached(pin, tmp_path)


def test_a_cached_snapshot_resolves_offline_to_its_commit(tmp_path: Path) -> None:
    snapshot = tmp_path / "models--org--tiny" / "snapshots" / REVISION
    snapshot.mkdir(parents=True)
    (snapshot / "model_index.json").write_text("{}")
    (tmp_path / "models--org--tiny" / "refs").mkdir()
    (tmp_path / "models--org--tiny" / "refs" / "main").write_text(REVISION)

    for revision in (REVISION, None):
        pin = WeightsPin("org/tiny", revision)
        assert cached(pin, tmp_path)
        folder, commit = resolve(pin, cache_dir=tmp_path)
        assert commit == REVISION and sha256_file(folder / "model_index.json")


# ---------------------------------------------------------------- new classes through model.yaml alone

def build_flux1(folder: Path) -> None:
    """Tiny random FLUX.1 components (CLIP text with the real CLIP BPE, T5, VAE, transformer) saved as both a
    FluxPipeline (text only) and a FluxKontextPipeline (one reference image) under `folder/<class>`."""
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        FluxKontextPipeline,
        FluxPipeline,
        FluxTransformer2DModel,
    )
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTokenizer,
        PreTrainedTokenizerFast,
        T5Config,
        T5EncoderModel,
    )

    from collapsebench.core.clip_tokens import write_tokenizer_files

    torch.manual_seed(0)
    clip_tokenizer = CLIPTokenizer.from_pretrained(str(write_tokenizer_files(folder / "clip-tokenizer")))
    clip = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(clip_tokenizer), hidden_size=HIDDEN, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407))
    t5_tokenizer = byte_level_tokenizer(PreTrainedTokenizerFast, ["<pad>", "</s>", "<unk>"], pad_token="<pad>",
                                        eos_token="</s>", unk_token="<unk>")
    t5 = T5EncoderModel(T5Config(vocab_size=len(t5_tokenizer), d_model=HIDDEN, d_kv=8, d_ff=32, num_layers=1,
                                 num_heads=2))
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=8, num_attention_heads=2,
        joint_attention_dim=HIDDEN, pooled_projection_dim=HIDDEN, guidance_embeds=True, axes_dims_rope=(2, 2, 4))
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(4, 4), layers_per_block=1, latent_channels=4,
        norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0, scaling_factor=1.0)
    parts = {"scheduler": FlowMatchEulerDiscreteScheduler(), "vae": vae, "text_encoder": clip,
             "tokenizer": clip_tokenizer, "text_encoder_2": t5, "tokenizer_2": t5_tokenizer, "transformer": transformer}
    for cls in (FluxPipeline, FluxKontextPipeline):
        cls(**parts).save_pretrained(folder / cls.__name__)


ENTRIES = {  # a model.yaml's `pipeline` class and `call` block: no adapter code for either
    "FluxKontextPipeline": {"references": "image", "references_as": "strip", "fixed": {
        "max_sequence_length": 32, "max_area": SIZE * SIZE, "_auto_resize": False}},
    "FluxPipeline": {"references": None, "fixed": {"max_sequence_length": 32}},  # a text-only baseline
}


@pytest.fixture(scope="module")
def flux1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("flux1")
    build_flux1(folder)
    return folder


@pytest.mark.parametrize("pipeline_class", sorted(ENTRIES))
def test_a_new_pipeline_class_runs_from_model_yaml_alone(flux1: Path, pipeline_class: str, small_pool: Path,
                                                         tmp_path: Path) -> None:
    import dataclasses

    from collapsebench.benchmark.model_config import load_model_config
    from collapsebench.intake.validate import check_model_folder

    document = {"schema_version": 1, "name": "acme", "display_name": "Acme", "kind": "model", "authors": ["A"],
                "license": "MIT", "adapter": "diffusers", "runner": "docker", "gpu_memory_gb": 1,
                "docker": {"dockerfile": "docker/diffusers/Dockerfile"},
                "pipeline": {"class": pipeline_class, "repo": "acme/tiny-flux", "revision": REVISION},
                "call": ENTRIES[pipeline_class],
                "settings": {"height": SIZE, "width": SIZE, "steps": 2, "guidance": 3.5, "dtype": "float32",
                             "device": "cpu"}}
    (tmp_path / "models" / "acme").mkdir(parents=True)
    (tmp_path / "docker" / "diffusers").mkdir(parents=True)
    (tmp_path / "docker" / "diffusers" / "Dockerfile").write_text("ARG BENCH_BASE\nFROM ${BENCH_BASE}\n")
    (tmp_path / "models" / "acme" / "model.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    assert check_model_folder(tmp_path / "models" / "acme") == []  # validate builds the adapter: all checked

    config = load_model_config(tmp_path / "models", "acme")
    pinned = {**config.raw["pipeline"], "repo": str(flux1 / pipeline_class)}  # the tiny weights stand in for the hub
    config = dataclasses.replace(config, raw={**config.raw, "pipeline": pinned})

    pool = load_pool(small_pool)
    jobs = [job for job in make_jobs(cast_suite(REPO / "benchmark/prompts.yaml", pool).prompts, [0])
            if job.prompt.id in (1, 61)]
    out = tmp_path / "out"
    report = run_generate(config, jobs, pool, out)
    assert (report.made, report.failed) == (2, [])
    records = {r["prompt_id"]: r for r in Manifest(out).records()}
    sent = records[61]["sent"]
    assert sent["pipeline"] == pipeline_class and sent["num_inference_steps"] == 2
    assert sent["max_sequence_length"] == 32
    if ENTRIES[pipeline_class]["references"] is None:
        assert sent["references"] == [] and "image" not in sent
    else:
        assert len(sent["references"]) == 10 and sent["references_as"] == "strip"


def test_a_call_mapping_is_checked_against_the_class_signature() -> None:
    base = {"height": 32, "width": 32, "steps": 2, "guidance": 1.0,
            "pipeline": {"class": "FluxKontextPipeline", "repo": "a/b", "revision": REVISION}}
    with pytest.raises(BenchError, match=r"call.guidance = 'true_cfg' is not an argument of FluxKontextPipeline"):
        get_adapter("diffusers", {**base, "call": {"guidance": "true_cfg"}})
    with pytest.raises(BenchError, match=r"call.fixed.temperature = 'temperature' is not an argument"):
        get_adapter("diffusers", {**base, "call": {"fixed": {"temperature": 0.7}}})
    with pytest.raises(BenchError, match=r"call has unknown keys \['negative'\]"):
        get_adapter("diffusers", {**base, "call": {"negative": "ugly"}})
    with pytest.raises(BenchError, match=r"settings has unknown keys \['stepz'\]"):
        get_adapter("diffusers", {**base, "stepz": 3})
    with pytest.raises(BenchError, match="settings lack guidance"):
        get_adapter("diffusers", {key: value for key, value in base.items() if key != "guidance"})
    assert get_adapter("diffusers", {key: value for key, value in base.items() if key != "guidance"}
                       | {"call": {"guidance": None}}).call["guidance"] is None
