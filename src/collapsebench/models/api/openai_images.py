"""GPT-Image through the official `openai` client: the Images API's edits call with a list of images.

Follows OpenAI's API reference, "Images: create image edit" (platform.openai.com/docs/api-reference/images/
createEdit) and the image generation guide: `images.edit(model=..., image=[...], prompt=...)` takes up to 16
images for the GPT image models, in the order given; the answer's `data[0].b64_json` is the image (GPT image
models always answer in base64). A prompt blocked by the moderation system is an HTTP 400 whose error code is
`moderation_blocked`; retries are ours (the client's own are off) so that Retry-After and the stated number of
tries apply as for every provider.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import openai

from collapsebench.models.api.base import Answer, Provider, Reference
from collapsebench.models.api.http import (
    AUTH_STATUSES,
    KeyRejected,
    ProviderError,
    Refused,
    Retryable,
    redact,
    retry_after_seconds,
    with_retries,
)

POLICY_CODES = frozenset({"moderation_blocked", "content_policy_violation"})


class OpenAIImages(Provider):
    name = "openai"
    key_env = "OPENAI_API_KEY"
    base_url_env = "OPENAI_BASE_URL"
    default_base_url = "https://api.openai.com/v1"
    docs = "https://platform.openai.com/docs/api-reference/images/createEdit"
    reference_name = "{phrase} (the {kind} from image {index})"
    settings_keys = frozenset({"size", "quality", "input_fidelity", "background"})
    sends_seed = False  # the Images API takes no seed: the seed is recorded as not sent

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client = openai.OpenAI(api_key=self.key, base_url=self.base_url, max_retries=0,
                                    timeout=self.policy.timeout_s)

    def ask(self, prompt: str, references: list[Reference], seed: int, label: str,
            submitted: dict[str, Any] | None = None, on_submit: Any = None) -> Answer:
        images = [(f"image_{index}.png", reference.png, "image/png")
                  for index, reference in enumerate(references, start=1)]
        arguments = {key: self.settings[key] for key in sorted(self.settings_keys) if key in self.settings}
        response = with_retries(lambda: self._call(images, prompt, arguments, label), self.policy, label)
        data = response.data or []
        if not data or not data[0].b64_json:
            return Answer(reason="no_image", detail="the answer's data holds no b64_json image")
        try:
            image = base64.b64decode(data[0].b64_json, validate=True)
        except (binascii.Error, ValueError):
            raise ProviderError(f"{label}: data[0].b64_json is not valid base64") from None
        usage = getattr(response, "usage", None)
        return Answer(image=image, extra={"usage": usage.model_dump() if usage is not None else None})

    def _call(self, images: list[Any], prompt: str, arguments: dict[str, Any], label: str) -> Any:
        try:
            return self.client.images.edit(model=self.model, image=images, prompt=prompt, n=1, output_format="png",
                                           **arguments)
        except openai.APIStatusError as error:
            status = error.status_code
            body = error.body if isinstance(error.body, dict) else {}
            body = body.get("error", body) if isinstance(body.get("error"), dict) else body
            code = str(body.get("code") or "")
            message = redact(str(body.get("message") or error.message), self.key)[:300]
            if status in AUTH_STATUSES:
                raise KeyRejected(f"{label}: HTTP {status}: {message} (the provider rejected the key)") from None
            if status == 400 and code in POLICY_CODES:
                raise Refused("content_policy", f"HTTP 400 error code {code}: {message}") from None
            if status in (408, 409, 429) or status >= 500:
                raise Retryable(f"{label}: HTTP {status}: {message}",
                                retry_after_seconds(error.response.headers.get("retry-after"))) from None
            raise ProviderError(f"{label}: HTTP {status} {code}: {message}") from None
        except openai.APITimeoutError:
            raise Retryable(f"{label}: timed out") from None
        except openai.APIConnectionError as error:
            raise Retryable(f"{label}: connection failed ({type(error.__cause__).__name__})") from None
        except (openai.APIResponseValidationError, ValueError) as error:
            raise ProviderError(f"{label}: the answer is not valid JSON of the Images API "
                                f"({redact(str(error), self.key)[:200]})") from None
