"""What a closed-API provider module provides: one job in, one answer out (an image, or a refusal).

A provider is not an `Adapter` (models/base.py): it holds no weights, runs many jobs at once from threads, and
its answer may be a refusal. Each module states the documentation it follows (`DOCS`), reads its key from one
environment variable, and renders the prompt so that it names the references the way that documentation does
("the person from image 3"), in prompt order.
"""

from __future__ import annotations

import base64
import io
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from collapsebench.benchmark.pool import Subject, load_reference
from collapsebench.benchmark.suite import Prompt
from collapsebench.core.errors import BenchError
from collapsebench.core.io import sha256_bytes
from collapsebench.models.api.http import RetryPolicy


@dataclass
class Answer:
    """One job's answer: image bytes as the provider sent them (checked later), or a refusal with its reason."""

    image: bytes | None = None
    reason: str | None = None  # content_policy | no_image, when image is None
    detail: str = ""
    model_id: str | None = None  # the model identifier the API says it used, when it says
    extra: dict[str, Any] = field(default_factory=dict)  # provider facts worth keeping (task id, credits charged)


@dataclass(frozen=True)
class Reference:
    """One reference image as sent: PNG bytes of the pool's image, and their hash for the manifest."""

    png: bytes
    subject: str

    @property
    def sha256(self) -> str:
        return sha256_bytes(self.png)

    def base64(self) -> str:
        return base64.b64encode(self.png).decode("ascii")

    def data_url(self) -> str:
        return f"data:image/png;base64,{self.base64()}"


def references_of(subjects: list[Subject]) -> list[Reference]:
    """The subjects' reference images in prompt order, as PNG (whatever format the pool keeps them in)."""
    out = []
    for subject in subjects:
        buffer = io.BytesIO()
        load_reference(subject).save(buffer, format="PNG")
        out.append(Reference(buffer.getvalue(), subject.id))
    return out


class Provider(ABC):
    """One provider's API. Subclasses set the class constants and implement `ask` (retries included)."""

    name: ClassVar[str]
    key_env: ClassVar[str]  # the only place a key is read from
    base_url_env: ClassVar[str]  # an optional override of the endpoint (a regional host, a proxy, a test server)
    default_base_url: ClassVar[str]
    docs: ClassVar[str]  # the documentation the request and answer formats follow
    reference_name: ClassVar[str] = "{phrase} (the {kind} from image {index})"
    settings_keys: ClassVar[frozenset[str]]  # model.yaml `settings` this provider sends
    sends_seed: ClassVar[bool] = True
    # Asynchronous providers (BFL) bill a submitted task, then are polled: `ask` takes the task a killed run left
    # (`submitted`) and reports each new one (`on_submit`), so a rerun polls it instead of paying again.
    asynchronous: ClassVar[bool] = False

    def __init__(self, model: str, settings: dict[str, Any], key: str, base_url: str, policy: RetryPolicy) -> None:
        self.model = model
        self.settings = dict(settings)
        self.key = key
        self.base_url = base_url.rstrip("/")
        self.policy = policy

    @classmethod
    def settings_problems(cls, settings: dict[str, Any]) -> list[str]:
        """Settings this provider does not know: a typo must fail in `validate`, not cost a run."""
        unknown = sorted(set(settings) - cls.settings_keys)
        return [f"unknown setting(s) {unknown} for provider {cls.name}; known: {sorted(cls.settings_keys)}"] if unknown else []

    def render(self, prompt: Prompt, subjects: list[Subject]) -> str:
        """The prompt as sent: each slot's phrase followed by the number of its reference image (1-based)."""
        return prompt.render([self.reference_name.format(phrase=s.phrase, kind=s.kind, index=i)
                              for i, s in enumerate(subjects, start=1)])

    def sent_settings(self, seed: int) -> dict[str, Any]:
        """What is sent besides the prompt and the images, as recorded in the manifest."""
        return {**self.settings, **({"seed": seed} if self.sends_seed else {})}

    @abstractmethod
    def ask(self, prompt: str, references: list[Reference], seed: int, label: str,
            submitted: dict[str, Any] | None = None, on_submit: Callable[[dict[str, Any]], None] | None = None
            ) -> Answer:
        """Send one job (retrying per `self.policy`) and return its answer; ProviderError when there is none.
        `submitted` and `on_submit` are used by asynchronous providers only."""

    def close(self) -> None:
        """Release connections."""


def check_settings(provider: type[Provider], settings: dict[str, Any], where: str) -> None:
    problems = provider.settings_problems(settings)
    if problems:
        raise BenchError(f"{where}: " + "; ".join(problems))
