"""Local HTTP servers that speak each closed API's documented format (pytest-httpserver on 127.0.0.1).

Nothing here mocks a client library: the provider modules talk HTTP to these servers exactly as they would to the
real endpoints (official clients for Gemini and OpenAI, httpx for BFL and BytePlus). Each fake answers with an
image drawn from the references it received (tiled side by side, so identities are really present), keeps a log
of every request (provider, prompt, headers), and can be told to misbehave for chosen prompts or the next
requests: 429 with Retry-After, 500, a content refusal, an answer without an image, malformed JSON, an
oversized or non-PNG/JPEG image, an expired result URL, or hold a request (BFL: a task's polls) until released.
"""

from __future__ import annotations

import base64
import io
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image
from werkzeug import Request, Response

SECRET = "sk-test-0123456789abcdefSECRETKEY"  # what every test passes as the key, and scans every output for
SIDE = 256
PROVIDER_ENV = {"gemini": ("GEMINI_API_KEY", "GEMINI_BASE_URL"), "openai": ("OPENAI_API_KEY", "OPENAI_BASE_URL"),
                "bfl": ("BFL_API_KEY", "BFL_BASE_URL"), "byteplus": ("ARK_API_KEY", "ARK_BASE_URL")}
MODELS = {"gemini": "nano-banana-pro", "openai": "gpt-image", "bfl": "flux2-pro", "byteplus": "seedream-4"}


def tiled(references: list[bytes], fmt: str = "PNG", side: int = SIDE) -> bytes:
    """The references side by side on a grey canvas of side x side px, encoded as `fmt`."""
    canvas = Image.new("RGB", (side, side), (128, 128, 128))
    columns = max(1, int(len(references) ** 0.5 + 0.999))
    cell = side // columns
    for index, data in enumerate(references):
        with Image.open(io.BytesIO(data)) as image:
            tile = image.convert("RGB").resize((cell, cell))
        canvas.paste(tile, ((index % columns) * cell, (index // columns) * cell))
    buffer = io.BytesIO()
    canvas.save(buffer, format=fmt)
    return buffer.getvalue()


@dataclass
class Logged:
    provider: str
    path: str
    prompt: str
    headers: dict[str, str]
    n_images: int
    body: dict[str, Any] = field(default_factory=dict)


class FakeProvider:
    """One provider's endpoints on `server`. `next_actions` are used by the next requests in turn; `by_prompt`
    maps a prompt substring to an action used every time it matches."""

    def __init__(self, server: Any, provider: str, model_returned: str | None = None) -> None:
        self.server, self.provider, self.model_returned = server, provider, model_returned
        self.log: list[Logged] = []
        self.lock = threading.Lock()
        self.next_actions: list[str] = []
        self.by_prompt: dict[str, str] = {}
        self.release = threading.Event()
        self.in_flight = 0
        self.max_in_flight = 0
        self.delay_s = 0.0
        self.tasks: dict[str, dict[str, Any]] = {}
        getattr(self, f"_register_{provider}")()

    # ------------------------------------------------------------------ shared

    def base_url(self) -> str:
        return self.server.url_for("").rstrip("/") + ("/v1" if self.provider == "openai" else "")

    def env(self) -> dict[str, str]:
        key, base = PROVIDER_ENV[self.provider]
        return {key: SECRET, base: self.base_url()}

    def _action(self, prompt: str) -> str:
        with self.lock:
            for marker, action in self.by_prompt.items():
                if marker in prompt:
                    return action
            return self.next_actions.pop(0) if self.next_actions else "ok"

    def _serve(self, request: Request, prompt: str, references: list[bytes], body: dict[str, Any],
               answer: Callable[[str, list[bytes]], Response]) -> Response:
        with self.lock:
            self.log.append(Logged(self.provider, request.path, prompt, dict(request.headers), len(references), body))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            action = self._action(prompt)
            if action == "hold":
                self.release.wait(timeout=60)
                action = "ok"
            if action == "slow":  # answers after the client's timeout
                time.sleep(1.5)
                action = "ok"
            if self.delay_s:
                time.sleep(self.delay_s)
            if action == "429":
                return _json({"error": {"code": 429, "message": "rate limited", "status": "RESOURCE_EXHAUSTED"}},
                             429, {"Retry-After": "1"})
            if action == "500":
                return _json({"error": {"code": 500, "message": "internal", "status": "INTERNAL"}}, 500)
            if action == "401":
                return _json({"error": {"code": 401, "message": "bad key", "status": "UNAUTHENTICATED"}}, 401)
            if action == "malformed":
                return Response('{"candidates": [ {"content": ', status=200, content_type="application/json")
            return answer(action, references)
        finally:
            with self.lock:
                self.in_flight -= 1

    def image_bytes(self, action: str, references: list[bytes]) -> bytes:
        if action == "jpeg":
            return tiled(references, "JPEG")
        if action == "webp":
            return tiled(references, "WEBP")
        if action == "oversized":
            return b"\x89PNG\r\n\x1a\n" + b"\0" * (8 * 1024 * 1024)  # 8 bytes over the cap
        return tiled(references)

    def prompts(self) -> list[str]:
        with self.lock:
            return [entry.prompt for entry in self.log]

    # ------------------------------------------------------------------ Gemini: generateContent

    def _register_gemini(self) -> None:
        pattern = re.compile(r"^/v1beta/models/[^/:]+:generateContent$")
        self.server.expect_request(pattern, method="POST").respond_with_handler(self._gemini)

    def _gemini(self, request: Request) -> Response:
        body = json.loads(request.get_data())
        parts = [p for content in body["contents"] for p in content["parts"]]
        references = [base64.urlsafe_b64decode(p["inlineData"]["data"]) for p in parts if "inlineData" in p]
        texts = [p["text"] for p in parts if "text" in p]
        model = self.model_returned or request.path.split("/models/")[1].split(":")[0]

        def answer(action: str, refs: list[bytes]) -> Response:
            if action == "policy":
                return _json({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "modelVersion": model})
            if action == "no_image":
                return _json({"candidates": [{"content": {"role": "model", "parts": [{"text": "I can't draw that."}]},
                                              "finishReason": "STOP"}], "modelVersion": model})
            data = base64.b64encode(self.image_bytes(action, refs)).decode()
            mime = "image/jpeg" if action == "jpeg" else "image/png"
            return _json({"candidates": [{"content": {"role": "model", "parts": [
                {"inlineData": {"mimeType": mime, "data": data}}]}, "finishReason": "STOP"}],
                "modelVersion": model, "usageMetadata": {"candidatesTokenCount": 1120}})

        return self._serve(request, texts[-1] if texts else "", references, {"texts": texts,
                           "generationConfig": body.get("generationConfig")}, answer)

    # ------------------------------------------------------------------ OpenAI: images/edits (multipart)

    def _register_openai(self) -> None:
        self.server.expect_request("/v1/images/edits", method="POST").respond_with_handler(self._openai)

    def _openai(self, request: Request) -> Response:
        files = request.files.getlist("image[]") or request.files.getlist("image")
        references = [f.read() for f in files]
        form = request.form.to_dict()

        def answer(action: str, refs: list[bytes]) -> Response:
            if action == "policy":
                return _json({"error": {"message": "Your request was rejected by the safety system.",
                                        "type": "image_generation_user_error", "param": None,
                                        "code": "moderation_blocked"}}, 400)
            if action == "no_image":
                return _json({"created": 1, "data": []})
            data = base64.b64encode(self.image_bytes(action, refs)).decode()
            return _json({"created": 1, "data": [{"b64_json": data}], "output_format": "png",
                          "usage": {"input_tokens": 100, "output_tokens": 4160, "total_tokens": 4260}})

        return self._serve(request, form.get("prompt", ""), references, form, answer)

    # ------------------------------------------------------------------ BFL: submit, poll, signed result

    def _register_bfl(self) -> None:
        self.server.expect_request(re.compile(r"^/v1/flux-2-[a-z]+$"), method="POST").respond_with_handler(self._bfl)
        self.server.expect_request("/v1/get_result", method="GET").respond_with_handler(self._bfl_poll)
        self.server.expect_request(re.compile(r"^/delivery/.+$"), method="GET").respond_with_handler(self._bfl_sample)

    def _bfl(self, request: Request) -> Response:
        body = json.loads(request.get_data())
        fields = ["input_image"] + [f"input_image_{i}" for i in range(2, 9)]
        references = [base64.b64decode(body[f]) for f in fields if body.get(f)]

        def answer(action: str, refs: list[bytes]) -> Response:
            task = f"task-{len(self.tasks) + 1}"
            self.tasks[task] = {"action": action, "refs": refs, "polls": 0}
            return _json({"id": task, "polling_url": self.server.url_for(f"/v1/get_result?id={task}"), "cost": 4.5,
                          "input_mp": 1.0, "output_mp": 1.0})

        return self._serve(request, body.get("prompt", ""), references, {k: v for k, v in body.items()
                                                                         if not k.startswith("input_image")}, answer)

    def _bfl_poll(self, request: Request) -> Response:
        task = self.tasks.get(request.args.get("id", ""))
        if task is None:
            return _json({"id": request.args.get("id"), "status": "Task not found"})
        task["polls"] += 1
        if task["action"] == "hold_poll":  # a task that stays pending until released (a run killed meanwhile)
            self.release.wait(timeout=60)
            task["action"] = "ok"
        if task["polls"] == 1:  # one Pending answer first, as a real task is never done at once
            return _json({"id": request.args["id"], "status": "Pending", "result": None, "progress": 0.5})
        if task["action"] == "policy":
            return _json({"id": request.args["id"], "status": "Content Moderated", "result": None,
                          "details": {"moderation": ["Derivative Works Filter"]}})
        if task["action"] == "no_image":
            return _json({"id": request.args["id"], "status": "Ready", "result": {}})
        name = "expired" if task["action"] == "expired" else request.args["id"]
        return _json({"id": request.args["id"], "status": "Ready",
                      "result": {"sample": self.server.url_for(f"/delivery/{name}.png?se=signed"), "seed": 1}})

    def _bfl_sample(self, request: Request) -> Response:
        with self.lock:
            self.log.append(Logged("bfl-delivery", request.path, "", dict(request.headers), 0))
        name = request.path.rsplit("/", 1)[1].removesuffix(".png")
        if name == "expired":
            return Response("<Error><Code>AuthenticationFailed</Code><Message>Signed expiry time has passed"
                            "</Message></Error>", status=403, content_type="application/xml")
        task = self.tasks[name]
        data = self.image_bytes(task["action"], task["refs"])
        return Response(data, status=200, content_type="image/jpeg" if task["action"] == "jpeg" else "image/png")

    # ------------------------------------------------------------------ BytePlus ModelArk: images/generations

    def _register_byteplus(self) -> None:
        self.server.expect_request("/api/v3/images/generations", method="POST").respond_with_handler(self._ark)

    def _ark(self, request: Request) -> Response:
        body = json.loads(request.get_data())
        references = [base64.b64decode(url.split(",", 1)[1]) for url in body.get("image") or []]
        model = self.model_returned or body.get("model")

        def answer(action: str, refs: list[bytes]) -> Response:
            if action == "policy":
                return _json({"error": {"code": "OutputImageSensitiveContentDetected",
                                        "message": "The request failed because the output image may contain "
                                                   "sensitive information.", "type": "BadRequest"}}, 400)
            if action == "no_image":
                return _json({"model": model, "created": 1, "data": [], "usage": {"generated_images": 0}})
            data = base64.b64encode(self.image_bytes(action, refs)).decode()
            return _json({"model": model, "created": 1, "data": [{"b64_json": data, "size": f"{SIDE}x{SIDE}"}],
                          "usage": {"generated_images": 1, "output_tokens": 4096, "total_tokens": 4096}})

        return self._serve(request, body.get("prompt", ""), references,
                           {k: v for k, v in body.items() if k != "image"}, answer)


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(obj), status=status, headers=headers or {}, content_type="application/json")
