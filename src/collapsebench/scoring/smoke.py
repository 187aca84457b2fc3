"""Smoke backbones: tiny random-weight DINOv2, DINO v1, CLIP, OWLv2 and face models built in code.

They exercise the real loading path (`from_pretrained` from a folder written by
`save_pretrained`) where no model hub is reachable. Their numbers measure
nothing about identity and are labelled "smoke" wherever they show.
The processor configs are the real checkpoints' preprocessing settings, so the
preprocessing path is the one real runs take.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from collapsebench.core.clip_tokens import byte_symbols, write_tokenizer_files
from collapsebench.core.io import atomic_write_bytes, atomic_write_text

SMOKE_VERSION = "2"  # bump when the architecture below changes, so stale folders are rebuilt (2: real CLIP BPE)
# The size of every smoke transformer (backbones and detector): small enough to build in a second.
TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
CLIP_MEAN, CLIP_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
# facebook/dinov2-* preprocessor_config.json: resize shortest edge 256 (bicubic), center crop 224, ImageNet stats.
DINOV2_PREPROCESSING = {
    "do_resize": True, "size": {"shortest_edge": 256}, "resample": 3,
    "do_center_crop": True, "crop_size": {"height": 224, "width": 224},
    "do_rescale": True, "rescale_factor": 1 / 255,
    "do_normalize": True, "image_mean": IMAGENET_MEAN, "image_std": IMAGENET_STD, "do_convert_rgb": True,
}


def built_once(folder: Path, build: Callable[[Path], None]) -> Path:
    """`folder`, built by `build` unless an earlier build finished it (each build writes READY last)."""
    if not (folder / "READY").exists():
        build(folder)
    return folder


def smoke_backbone_dir(root: Path) -> Path:
    """Build (once) and return the folder holding dinov2/, dino/ and clip/ smoke checkpoints."""
    return built_once(Path(root) / f"v{SMOKE_VERSION}", build_smoke_backbones)


def build_smoke_backbones(root: Path, seed: int = 0) -> None:
    from transformers import (
        BitImageProcessor,
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        Dinov2Config,
        Dinov2Model,
        ViTConfig,
        ViTImageProcessor,
        ViTModel,
    )

    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tiny = TINY
    Dinov2Model(Dinov2Config(patch_size=14, image_size=224, **tiny)).save_pretrained(root / "dinov2")
    BitImageProcessor(**DINOV2_PREPROCESSING).save_pretrained(root / "dinov2")

    ViTModel(ViTConfig(patch_size=16, image_size=224, **tiny), add_pooling_layer=False).save_pretrained(root / "dino")
    ViTImageProcessor(size={"height": 224, "width": 224}, resample=3, image_mean=IMAGENET_MEAN,
                      image_std=IMAGENET_STD).save_pretrained(root / "dino")

    # The real CLIP BPE tokenizer (core/clip_tokens.py): CLIP-T truncation counts are the real checkpoint's.
    write_tokenizer_files(root / "clip")
    vocab = json.loads((root / "clip" / "vocab.json").read_text(encoding="utf-8"))
    clip_config = CLIPConfig(
        text_config={**tiny, "vocab_size": len(vocab), "max_position_embeddings": 77,
                     "bos_token_id": vocab["<|startoftext|>"], "eos_token_id": vocab["<|endoftext|>"],
                     "pad_token_id": vocab["<|endoftext|>"]},
        vision_config={**tiny, "patch_size": 32, "image_size": 224},
        projection_dim=16,
    )
    CLIPModel(clip_config).save_pretrained(root / "clip")
    CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}, resample=3,
                       image_mean=CLIP_MEAN, image_std=CLIP_STD).save_pretrained(root / "clip")
    atomic_write_text(root / "READY", f"smoke backbones v{SMOKE_VERSION}, random weights, seed {seed}\n")


SMOKE_DETECTOR_VERSION = "2"  # 2: byte symbols in CLIP's vocabulary order
OWL_TINY_IMAGE_SIZE = 128  # the real OWLv2-base reads 960 px; the smoke one 128 px (8 x 8 = 64 boxes)


def smoke_detector_dir(root: Path) -> Path:
    """Build (once) and return a tiny random-weight OWLv2 detector folder beside the smoke backbones.

    Kept apart from `smoke_backbone_dir` (its own version and READY marker) so
    adding it does not rebuild the smoke backbones, whose embeddings are cached.
    """
    return built_once(Path(root) / f"detector-v{SMOKE_DETECTOR_VERSION}", build_smoke_detector)


def build_smoke_detector(folder: Path, seed: int = 0) -> None:
    """A tiny `Owlv2ForObjectDetection` + `Owlv2Processor` (real OWLv2 preprocessing, small size, in-code tokenizer).

    Its boxes and scores are random: it exercises the detection -> crop -> match
    path through `from_pretrained`, and measures nothing.
    """
    from transformers import (
        CLIPTokenizer,
        Owlv2Config,
        Owlv2ForObjectDetection,
        Owlv2Processor,
    )

    try:  # transformers 5 names the torchvision-free processor *Pil; either one preprocesses the same way
        from transformers import Owlv2ImageProcessorPil as ImageProcessor
    except ImportError:  # pragma: no cover - older transformers
        from transformers import Owlv2ImageProcessor as ImageProcessor

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    vocab = clip_vocab()
    # OWL's class head compares vision features projected to the text width with text embeddings: equal widths.
    # Its tokenizer stays character-level: detection queries are short, and a 49408-token table would only slow it.
    tiny = TINY
    config = Owlv2Config(
        text_config={**tiny, "vocab_size": len(vocab), "max_position_embeddings": 32,
                     "bos_token_id": vocab["<|startoftext|>"], "eos_token_id": vocab["<|endoftext|>"],
                     "pad_token_id": vocab["<|endoftext|>"]},
        vision_config={**tiny, "patch_size": 16, "image_size": OWL_TINY_IMAGE_SIZE},
        projection_dim=32,
    )
    Owlv2ForObjectDetection(config).save_pretrained(folder)
    processor = ImageProcessor(size={"height": OWL_TINY_IMAGE_SIZE, "width": OWL_TINY_IMAGE_SIZE},
                               image_mean=CLIP_MEAN, image_std=CLIP_STD)
    Owlv2Processor(image_processor=processor, tokenizer=CLIPTokenizer(vocab=vocab, merges=[])).save_pretrained(folder)
    atomic_write_text(folder / "READY", f"smoke OWLv2 detector v{SMOKE_DETECTOR_VERSION}, random weights, seed {seed}\n")


def clip_vocab() -> dict[str, int]:
    """A character-level CLIP BPE vocabulary (no merges): every byte symbol, alone and word-final."""
    symbols = byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"]
    return {token: index for index, token in enumerate(tokens)}


SMOKE_FACE_VERSION = "1"
SMOKE_FACE_INPUT = 640  # the real YuNet 2023mar graph's fixed input side
SMOKE_FACE_DIM = 128  # SFace's embedding width


def smoke_face_dir(root: Path) -> Path:
    """Build (once) and return a folder with tiny random YuNet- and SFace-shaped ONNX graphs (see build_smoke_faces)."""
    return built_once(Path(root) / f"faces-v{SMOKE_FACE_VERSION}", build_smoke_faces)


def build_smoke_faces(folder: Path, seed: int = 0) -> None:
    """Random-weight stand-ins for the pinned face models, with the real files' names, inputs and outputs.

    The detector takes a 1 x 3 x 640 x 640 BGR image and returns YuNet's twelve heads
    (`cls_/obj_/bbox_/kps_` at strides 8, 16, 32, each 1 x cells x channels, cls/obj after a sigmoid);
    the recognizer takes a 1 x 3 x 112 x 112 face and returns a 1 x 128 vector. They run through the same
    onnxruntime path as the real files and measure nothing.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from collapsebench.scoring.face import DEFAULT_FACE, YUNET_STRIDES

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)

    def tensor(name: str, values: np.ndarray) -> onnx.TensorProto:
        return numpy_helper.from_array(np.ascontiguousarray(values), name)

    side = SMOKE_FACE_INPUT
    nodes = [helper.make_node("Mul", ["input", "inv255"], ["x"])]
    inits = [tensor("inv255", np.array(1 / 255, np.float32)),
             tensor("head_split", np.array([1, 1, 4, 10], np.int64))]
    outputs = []
    for s in YUNET_STRIDES:
        # cls and obj start biased towards "face" so that a few random boxes pass the score threshold
        bias = np.concatenate([[1.5, 1.5], np.zeros(14)]).astype(np.float32)
        weight = (rng.normal(0, 1, (16, 3, s, s)) / np.sqrt(3 * s * s)).astype(np.float32)
        inits += [tensor(f"w{s}", weight), tensor(f"b{s}", bias), tensor(f"shape{s}", np.array([1, -1, 16], np.int64))]
        nodes += [helper.make_node("Conv", ["x", f"w{s}", f"b{s}"], [f"conv{s}"], strides=[s, s]),
                  helper.make_node("Transpose", [f"conv{s}"], [f"nhwc{s}"], perm=[0, 2, 3, 1]),
                  helper.make_node("Reshape", [f"nhwc{s}", f"shape{s}"], [f"flat{s}"]),
                  helper.make_node("Split", [f"flat{s}", "head_split"],
                                   [f"cls_raw{s}", f"obj_raw{s}", f"bbox_{s}", f"kps_{s}"], axis=2),
                  helper.make_node("Sigmoid", [f"cls_raw{s}"], [f"cls_{s}"]),
                  helper.make_node("Sigmoid", [f"obj_raw{s}"], [f"obj_{s}"])]
        cells = (side // s) ** 2
        outputs += [helper.make_tensor_value_info(f"{head}_{s}", TensorProto.FLOAT, [1, cells, width])
                    for head, width in (("cls", 1), ("obj", 1), ("bbox", 4), ("kps", 10))]
    graph = helper.make_graph(nodes, "smoke_yunet",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, side, side])],
                              outputs, inits)
    _save_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
               folder / DEFAULT_FACE["detector"]["file"])

    conv = (rng.normal(0, 1, (8, 3, 8, 8)) / np.sqrt(3 * 64)).astype(np.float32)
    dense = (rng.normal(0, 1, (8 * 14 * 14, SMOKE_FACE_DIM)) / np.sqrt(8 * 14 * 14)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Mul", ["data", "inv255"], ["x"]),
         helper.make_node("Conv", ["x", "conv"], ["features"], strides=[8, 8]),
         helper.make_node("Relu", ["features"], ["active"]),
         helper.make_node("Flatten", ["active"], ["flat"]),
         helper.make_node("MatMul", ["flat", "dense"], ["fc1"])],
        "smoke_sface",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 112, 112])],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, SMOKE_FACE_DIM])],
        [tensor("inv255", np.array(1 / 255, np.float32)), tensor("conv", conv), tensor("dense", dense)])
    _save_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
               folder / DEFAULT_FACE["recognizer"]["file"])
    atomic_write_text(folder / "READY", f"smoke face models v{SMOKE_FACE_VERSION}, random weights, seed {seed}\n")


def _save_onnx(model: object, path: Path) -> None:
    """Check and write an ONNX model (IR version kept at one every onnxruntime here reads)."""
    import onnx

    model.ir_version = 9  # type: ignore[attr-defined]
    onnx.checker.check_model(model)
    atomic_write_bytes(path, model.SerializeToString())  # type: ignore[attr-defined]
