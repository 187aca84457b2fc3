"""One thing wrong with a user's file, named by file and field.

Validation collects every problem instead of stopping at the first, so a
pull-request author sees the whole list of fixes in one CI run.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    file: str  # as shown to the user: relative to where the command ran, non-ASCII escaped
    field: str | None  # dotted field (model.yaml), "line N: field" (manifest), or None for the whole file
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.message}" if self.field else f"{self.file}: {self.message}"


def shown(path: object) -> str:
    """A path safe to print: non-ASCII, control and undecodable characters escaped, so look-alikes stand out."""
    text = str(path)
    return text if text.isascii() and text.isprintable() else ascii(text)
