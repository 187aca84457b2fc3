"""Nano Banana Pro (Gemini 3 Pro Image) through the official `google-genai` client.

Follows Google's Gemini API documentation, "Image generation with Gemini" (ai.google.dev/gemini-api/docs/
image-generation) and the Gemini 3 Pro Image model card (up to 14 reference images per prompt): one
`models.generateContent` call whose contents interleave a label and each reference image ("Image 1:", image,
"Image 2:", image, ...) before the instruction, so "from image 3" in the prompt names the third reference. The
answer's image comes back as an `inlineData` part; a blocked prompt as `promptFeedback.blockReason`; a blocked or
empty image as the candidate's `finishReason` (IMAGE_SAFETY, PROHIBITED_CONTENT, NO_IMAGE, ...).
"""

from __future__ import annotations

from typing import Any

import httpx2
from google import genai
from google.genai import errors, types

from collapsebench.models.api.base import Answer, Provider, Reference
from collapsebench.models.api.http import (
    AUTH_STATUSES,
    KeyRejected,
    ProviderError,
    Retryable,
    check_status,
    redact,
    retry_after_seconds,
    with_retries,
)

POLICY_REASONS = frozenset({"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY",
                            "IMAGE_PROHIBITED_CONTENT", "RECITATION", "IMAGE_RECITATION", "JAILBREAK"})


class Gemini(Provider):
    name = "gemini"
    key_env = "GEMINI_API_KEY"
    base_url_env = "GEMINI_BASE_URL"
    default_base_url = "https://generativelanguage.googleapis.com"
    docs = "https://ai.google.dev/gemini-api/docs/image-generation"
    reference_name = "{phrase} (the {kind} from image {index})"
    settings_keys = frozenset({"aspect_ratio", "image_size"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        options = types.HttpOptions(base_url=self.base_url, api_version="v1beta",  # the documented version
                                    timeout=int(self.policy.timeout_s * 1000))
        self.client = genai.Client(api_key=self.key, http_options=options)  # no retry_options: ours are used

    def ask(self, prompt: str, references: list[Reference], seed: int, label: str,
            submitted: dict[str, Any] | None = None, on_submit: Any = None) -> Answer:
        contents: list[Any] = []
        for index, reference in enumerate(references, start=1):
            contents += [f"Image {index}:", types.Part.from_bytes(data=reference.png, mime_type="image/png")]
        contents.append(prompt)
        image_config = types.ImageConfig(**{k: self.settings[k] for k in ("aspect_ratio", "image_size")
                                            if k in self.settings})
        config = types.GenerateContentConfig(response_modalities=["IMAGE"], image_config=image_config, seed=seed,
                                             candidate_count=1)
        response = with_retries(lambda: self._call(contents, config, label), self.policy, label)
        return _answer(response)

    def _call(self, contents: list[Any], config: types.GenerateContentConfig, label: str) -> Any:
        try:
            return self.client.models.generate_content(model=self.model, contents=contents, config=config)
        except errors.APIError as error:
            response = getattr(error, "response", None)
            headers = getattr(response, "headers", None) or {}
            status = int(error.code or 0)
            message = redact(f"{error.status or ''} {error.message or ''}".strip(), self.key)[:300]
            if status in AUTH_STATUSES:
                raise KeyRejected(f"{label}: HTTP {status}: {message} (the provider rejected the key)") from None
            if status == 429 or status >= 500:
                raise Retryable(f"{label}: HTTP {status}: {message}", retry_after_seconds(headers.get("retry-after")))
            check_status(status, headers, message, label)
            raise ProviderError(f"{label}: HTTP {status}: {message}") from None
        except httpx2.TimeoutException:
            raise Retryable(f"{label}: timed out") from None
        except httpx2.TransportError as error:
            raise Retryable(f"{label}: connection failed ({type(error).__name__})") from None
        except ValueError as error:  # the client could not parse the body
            raise ProviderError(f"{label}: the answer is not valid JSON ({redact(str(error), self.key)[:200]})") from None


def _answer(response: Any) -> Answer:
    model_id = getattr(response, "model_version", None)
    feedback = getattr(response, "prompt_feedback", None)
    blocked = getattr(feedback, "block_reason", None)
    if blocked:
        reason = getattr(blocked, "value", str(blocked))
        return Answer(reason="content_policy", detail=f"promptFeedback.blockReason {reason}", model_id=model_id)
    candidates = response.candidates or []
    if not candidates:
        return Answer(reason="no_image", detail="the answer has no candidate", model_id=model_id)
    candidate = candidates[0]
    finish = getattr(candidate.finish_reason, "value", candidate.finish_reason)
    parts = (candidate.content.parts if candidate.content and candidate.content.parts else [])
    for part in parts:
        if part.inline_data is not None and part.inline_data.data:
            return Answer(image=part.inline_data.data, model_id=model_id, extra={"finish_reason": finish})
    text = " ".join(part.text for part in parts if part.text)[:300]
    if finish in POLICY_REASONS:
        return Answer(reason="content_policy", detail=f"finishReason {finish}" + (f": {text}" if text else ""),
                      model_id=model_id)
    return Answer(reason="no_image", detail=f"finishReason {finish}; no image part" + (f"; text: {text}" if text else ""),
                  model_id=model_id)
