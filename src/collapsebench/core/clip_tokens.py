"""The real CLIP tokenizer, built offline from the BPE vocabulary that ships inside the open_clip_torch wheel.

CLIP-T only sees the first 77 tokens of a prompt (start and end token
included), so the benchmark must know how many tokens each rendered prompt
has. A character-level stand-in counts every prompt as too long and says
nothing; the real byte-pair vocabulary (OpenAI's `bpe_simple_vocab_16e6`,
MIT licence) gives the counts `openai/clip-vit-*` checkpoints give. It is read
from the installed `open_clip` package folder without importing the package
(importing open_clip needs torchvision, which we do not depend on), and
turned into the two files `CLIPTokenizer` loads: vocab.json and merges.txt.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import json
from pathlib import Path
from typing import Any

from collapsebench.core.errors import BenchError
from collapsebench.core.io import atomic_write_text

CLIP_MAX_TOKENS = 77  # the text encoder's window, start and end token included
VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
N_MERGES = 49152 - 256 - 2  # CLIP keeps the first 48894 merges: 256 bytes x 2 + merges + 2 specials = 49408 tokens
INSTALL_HINT = "pip install --no-deps open_clip_torch==3.3.0  (only its vocabulary file is used; --no-deps keeps torchvision out)"


def bpe_vocabulary_file() -> Path:
    """The gzipped BPE merges inside the installed open_clip package (found without importing it)."""
    spec = importlib.util.find_spec("open_clip")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / VOCAB_FILE
        if path.is_file():
            return path
    raise BenchError(f"the CLIP BPE vocabulary ({VOCAB_FILE}) was not found: install it with `{INSTALL_HINT}`")


def byte_symbols() -> list[str]:
    """CLIP's byte symbols in CLIP's vocabulary order: the printable bytes as themselves, then the other bytes
    mapped past 255 (byte-level BPE works on these characters; the order fixes the token ids)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    others = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(others))]


def write_tokenizer_files(folder: Path) -> Path:
    """Write vocab.json, merges.txt and the special-token map of the real CLIP tokenizer into `folder`."""
    lines = gzip.open(bpe_vocabulary_file(), "rt", encoding="utf-8").read().split("\n")
    merges = [tuple(line.split()) for line in lines[1:N_MERGES + 1]]
    symbols = byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + \
        ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "vocab.json", json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False))
    atomic_write_text(folder / "merges.txt", "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    atomic_write_text(folder / "tokenizer_config.json", json.dumps({
        "model_max_length": CLIP_MAX_TOKENS, "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "do_lower_case": True,
        "tokenizer_class": "CLIPTokenizer"}))
    return folder


@functools.cache
def clip_tokenizer() -> Any:
    """A CLIPTokenizer with the real vocabulary (built once per process in a temporary folder)."""
    import tempfile

    from transformers import CLIPTokenizer

    folder = write_tokenizer_files(Path(tempfile.mkdtemp(prefix="collapsebench-clip-bpe-")))
    return CLIPTokenizer.from_pretrained(str(folder))


def count_tokens(text: str) -> int:
    """Tokens CLIP's text encoder would see for `text`, start and end token included, before truncation."""
    return len(clip_tokenizer()(text, truncation=False)["input_ids"])
