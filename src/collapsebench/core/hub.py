"""Pinned Hugging Face checkpoints: what a full commit looks like and how a pin reaches `from_pretrained`.

A branch or tag can move; a 40-hex commit cannot. Every loader in the
project (backbones, detector, adapters' weights) passes its pin the same way,
so "unpinned" means one thing everywhere: no `revision` argument at all.
"""

from __future__ import annotations

import re
from typing import Any

COMMIT = re.compile(r"^[0-9a-f]{40}$")


def revision_kwargs(revision: str | None) -> dict[str, Any]:
    """`{"revision": ...}` for `from_pretrained` when pinned, `{}` when not (the hub's default branch)."""
    return {"revision": revision} if revision else {}
