"""FLUX.2 [pro] through Black Forest Labs' HTTP API (no official Python client): submit, poll, download.

Follows BFL's API reference, "Generate or edit an image with FLUX.2 [pro]" (docs.bfl.ai/api-reference/models/
generate-or-edit-an-image-with-flux2-[pro]) and "Get Result": POST /v1/flux-2-pro with the `x-key` header and
`input_image`, `input_image_2` ... `input_image_8` (base64; at most 8 references), answered by
`{id, polling_url, cost}`; then GET the polling URL until `status` is `Ready` (`result.sample` is a signed
delivery URL that expires after minutes), `Request Moderated` / `Content Moderated` (a content refusal) or
`Error` / `Task not found`. FLUX.2 prompts name references by their index ("the person from image 2").

The submit is what is paid for, so it alone is never repeated once answered: polls and the download are retried
on their own. The key goes only to the submit host and polling URLs on the same host (or a sibling host of the
same domain, as BFL's regional `api.eu2.bfl.ai` is to `api.bfl.ai`); the signed result URL is fetched without it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from collapsebench.core.pngcheck import MAX_BYTES
from collapsebench.models.api.base import Answer, Provider, Reference
from collapsebench.models.api.http import (
    ProviderError,
    Refused,
    download,
    http_client,
    json_body,
    send,
    with_retries,
)

MAX_REFERENCES = 8
FIELDS = ("input_image", *(f"input_image_{i}" for i in range(2, MAX_REFERENCES + 1)))
MODERATED = ("Request Moderated", "Content Moderated")
FAILED = ("Error", "Task not found")


class BFL(Provider):
    name = "bfl"
    key_env = "BFL_API_KEY"
    base_url_env = "BFL_BASE_URL"
    default_base_url = "https://api.bfl.ai"
    docs = "https://docs.bfl.ai/api-reference/models/generate-or-edit-an-image-with-flux2-[pro]"
    reference_name = "{phrase} (the {kind} from image {index})"
    settings_keys = frozenset({"width", "height", "safety_tolerance", "prompt_upsampling", "endpoint"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.http = http_client(self.policy)

    asynchronous = True

    def ask(self, prompt: str, references: list[Reference], seed: int, label: str,
            submitted: dict[str, Any] | None = None, on_submit: Callable[[dict[str, Any]], None] | None = None
            ) -> Answer:
        if len(references) > MAX_REFERENCES:
            raise ProviderError(f"{label}: {len(references)} references; the API has {MAX_REFERENCES} fields")
        task, result = (submitted, None) if submitted else (None, None)
        if task is not None:  # a killed run paid for this task: poll it, do not submit again
            self._check_polling_host(task["polling_url"], label)
            result = self._poll(task["polling_url"], label)
            if result.get("status") == "Task not found":  # gone (tasks are kept for a limited time): ask anew
                task, result = None, None
        if task is None:
            task = self._submit(prompt, references, seed, label)
            if on_submit is not None:
                on_submit(task)
            result = self._poll(task["polling_url"], label)
        extra = {"task_id": task.get("id"), "cost_credits": task.get("cost"), "resumed": task is submitted}
        status = result.get("status")
        if status in MODERATED:
            raise Refused("content_policy", f"status {status}: {str(result.get('details') or '')[:200]}")
        if status in FAILED:
            raise ProviderError(f"{label}: the task ended with status {status}: {str(result.get('details'))[:200]}")
        sample = (result.get("result") or {}).get("sample") if isinstance(result.get("result"), dict) else None
        if not isinstance(sample, str) or not sample:
            return Answer(reason="no_image", detail=f"status {status} without result.sample", extra=extra)
        image = with_retries(lambda: download(self.http, sample, MAX_BYTES, f"{label}: result"), self.policy,
                             f"{label}: result")
        return Answer(image=image, extra=extra)

    def _submit(self, prompt: str, references: list[Reference], seed: int, label: str) -> dict[str, Any]:
        """POST the job (the paid step): its task id, polling URL and credits charged."""
        body: dict[str, Any] = {"prompt": prompt, "seed": seed, "output_format": "png",
                                **{k: v for k, v in self.settings.items() if k != "endpoint"}}
        body.update({field: reference.base64() for field, reference in zip(FIELDS, references, strict=False)})
        endpoint = f"{self.base_url}/v1/{self.settings.get('endpoint', self.model)}"
        answer = with_retries(lambda: json_body(send(self.http, "POST", endpoint, f"{label}: submit",
                                                     headers=self._headers(), json=body), f"{label}: submit"),
                              self.policy, f"{label}: submit")
        if not isinstance(answer, dict) or not isinstance(answer.get("polling_url"), str):
            raise ProviderError(f"{label}: the submit answer has no polling_url: {str(answer)[:200]}")
        self._check_polling_host(answer["polling_url"], label)
        return {"polling_url": answer["polling_url"], "id": answer.get("id"), "cost": answer.get("cost")}

    def _poll(self, url: str, label: str) -> dict[str, Any]:
        """The task's result once it is no longer pending (Pending, Queued, Processing)."""
        deadline = time.monotonic() + self.policy.poll_timeout_s
        while True:
            result = with_retries(lambda: json_body(send(self.http, "GET", url, f"{label}: poll",
                                                         headers=self._headers()), f"{label}: poll"),
                                  self.policy, f"{label}: poll")
            if not isinstance(result, dict) or "status" not in result:
                raise ProviderError(f"{label}: the poll answer has no status: {str(result)[:200]}")
            if result["status"] == "Ready" or result["status"] in MODERATED + FAILED:
                return result
            if time.monotonic() > deadline:
                raise ProviderError(f"{label}: still {result['status']!r} after {self.policy.poll_timeout_s:g} s")
            time.sleep(self.policy.poll_interval_s)

    def _headers(self) -> dict[str, str]:
        return {"x-key": self.key, "accept": "application/json"}

    def _check_polling_host(self, url: str, label: str) -> None:
        """The key is sent with every poll: only to the submit host, or a host of the same parent domain."""
        base, poll = urlsplit(self.base_url), urlsplit(url)
        same = poll.scheme == base.scheme and poll.hostname == base.hostname
        parent = (base.hostname or "").split(".", 1)[-1]
        sibling = (poll.scheme == "https" and parent.count(".") >= 1 and not parent.replace(".", "").isdigit()
                   and (poll.hostname or "").endswith("." + parent))
        if not (same or sibling):
            raise ProviderError(f"{label}: the polling URL's host {poll.hostname!r} is not the API's "
                                f"({base.hostname!r}); the key is not sent there")

    def close(self) -> None:
        self.http.close()
