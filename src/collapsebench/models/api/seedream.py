"""Seedream 4.x through BytePlus ModelArk's HTTP API (no official Python client).

Follows the ModelArk API reference, "Image generation API" (docs.byteplus.com/en/docs/ModelArk/1541523): POST
/api/v3/images/generations with `Authorization: Bearer <ARK_API_KEY>`, `model`, `prompt`, `image` as a list of
references (base64 data URLs `data:image/png;base64,...`; Seedream 4.0 takes up to 10),
`sequential_image_generation: disabled` (one image), `response_format: b64_json` (a `url` answer would expire
after 24 hours) and `watermark: false`. The answer is `{model, data: [{b64_json, size}], usage}`; a content
refusal is an HTTP 400 whose `error.code` names sensitive content (InputTextSensitiveContentDetected,
OutputImageSensitiveContentDetected, ...), or, per image, a `data[i].error`. Seedream's guide names references
by their position ("image 1", "image 2").
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from collapsebench.models.api.base import Answer, Provider, Reference
from collapsebench.models.api.http import (
    ProviderError,
    Refused,
    Retryable,
    http_client,
    json_body,
    send,
    with_retries,
)

POLICY_MARKERS = ("SensitiveContent", "RiskDetection")


class Seedream(Provider):
    name = "byteplus"
    key_env = "ARK_API_KEY"
    base_url_env = "ARK_BASE_URL"
    default_base_url = "https://ark.ap-southeast.bytepluses.com"
    docs = "https://docs.byteplus.com/en/docs/ModelArk/1541523"
    reference_name = "{phrase} (the {kind} from image {index})"
    settings_keys = frozenset({"size", "watermark", "guidance_scale"})
    sends_seed = False  # Seedream 4.x ignores `seed` (documented for 3.0 only): recorded as not sent

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.http = http_client(self.policy)

    def ask(self, prompt: str, references: list[Reference], seed: int, label: str,
            submitted: dict[str, Any] | None = None, on_submit: Any = None) -> Answer:
        body = {"model": self.model, "prompt": prompt, "image": [r.data_url() for r in references],
                "sequential_image_generation": "disabled", "response_format": "b64_json", "stream": False,
                "watermark": False, **self.settings}
        url = f"{self.base_url}/api/v3/images/generations"
        answer = with_retries(lambda: self._call(url, body, label), self.policy, label)
        if not isinstance(answer, dict):
            raise ProviderError(f"{label}: the answer is not a JSON object: {str(answer)[:200]}")
        model_id = answer.get("model") if isinstance(answer.get("model"), str) else None
        data = answer.get("data") or []
        first = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
        if isinstance(first.get("error"), dict):
            code, message = str(first["error"].get("code")), str(first["error"].get("message"))[:200]
            if any(marker in code for marker in POLICY_MARKERS):
                raise Refused("content_policy", f"data[0].error {code}: {message}")
            raise ProviderError(f"{label}: data[0].error {code}: {message}")
        if not first.get("b64_json"):
            return Answer(reason="no_image", detail="the answer's data holds no b64_json image", model_id=model_id)
        try:
            image = base64.b64decode(first["b64_json"], validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise ProviderError(f"{label}: data[0].b64_json is not valid base64") from None
        return Answer(image=image, model_id=model_id, extra={"usage": answer.get("usage")})

    def _call(self, url: str, body: dict[str, Any], label: str) -> Any:
        headers = {"authorization": f"Bearer {self.key}", "content-type": "application/json"}
        try:
            return json_body(send(self.http, "POST", url, label, headers=headers, json=body), label)
        except (ProviderError, Retryable) as error:
            if not isinstance(error, Retryable) and "HTTP 400" in str(error) and any(
                    marker in str(error) for marker in POLICY_MARKERS):
                raise Refused("content_policy", str(error).split(": ", 1)[-1][:300]) from None
            raise

    def close(self) -> None:
        self.http.close()
