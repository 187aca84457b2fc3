"""Closed image models behind paid APIs (`runner: api`): one provider module per API, keys from the environment.

Importing this package needs the client libraries (google-genai, openai, httpx); nothing else imports it unless an
API entry is validated or generated.
"""

from __future__ import annotations

from collapsebench.core.errors import BenchError
from collapsebench.models.api.base import Provider
from collapsebench.models.api.bfl import BFL
from collapsebench.models.api.gemini import Gemini
from collapsebench.models.api.openai_images import OpenAIImages
from collapsebench.models.api.seedream import Seedream

PROVIDERS: dict[str, type[Provider]] = {cls.name: cls for cls in (Gemini, OpenAIImages, BFL, Seedream)}


def provider_class(name: str) -> type[Provider]:
    if name not in PROVIDERS:
        raise BenchError(f"unknown API provider {name!r}; known: {', '.join(sorted(PROVIDERS))}")
    return PROVIDERS[name]
