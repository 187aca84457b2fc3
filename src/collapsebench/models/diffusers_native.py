"""diffusers-native models: one adapter for any stock diffusers pipeline, configured by model.yaml alone.

A leaderboard entry of this kind names `pipeline: {class, repo, revision}`
and, where the class's call differs from FLUX.2's, a `call:` block that says
how the benchmark's inputs map onto that call:

    call:
      references: image        # the argument that receives the references (null: a text-only baseline)
      references_as: list      # list (all, in prompt order) | first | strip (side by side in one image)
      prompt: prompt
      steps: num_inference_steps
      guidance: guidance_scale # or true_cfg_scale; null when the pipeline has no guidance
      height: height
      width: width
      generator: generator
      fixed: {max_sequence_length: 512}   # extra arguments passed as they are
      reference_tag: null      # e.g. "<img><|image_{index}|></img>": written after each subject's phrase (OmniGen)

Every mapped name, and every fixed argument, must be a parameter of the
class's `__call__`; settings are `height, width, steps, guidance` (required,
guidance only when mapped) plus `dtype, offload, device`. Unknown keys are
errors. All of this is checked when the adapter is built, which `validate`
does on CPU without weights, so a wrong entry fails in the pull request, not
on the GPU runner. The adapter loads exactly the pinned class with
`from_pretrained(repo, revision=...)` from the mounted model cache (the
container has no network).
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

from PIL import Image

from collapsebench.benchmark.pool import Subject
from collapsebench.core.errors import BenchError
from collapsebench.models.base import Adapter, Generation, register
from collapsebench.models.weights import WeightsPin, resolve

DTYPES = ("bfloat16", "float16", "float32")
OFFLOAD = ("none", "model")
SETTINGS = ("height", "width", "steps", "guidance", "dtype", "offload", "device", "pipeline", "call")
REFERENCES_AS = ("list", "first", "strip")
# FLUX.2's call: what an entry gets for every key its `call:` block leaves out.
DEFAULT_CALL: dict[str, Any] = {
    "references": "image", "references_as": "list", "prompt": "prompt", "steps": "num_inference_steps",
    "guidance": "guidance_scale", "height": "height", "width": "width", "generator": "generator", "fixed": {},
    "reference_tag": None,
}


# Classes whose from_pretrained picks the class to load from the repository's model_index.json (or from a
# `custom_pipeline`): pinning one of these pins nothing, so an entry must name the concrete class.
RESOLVED_AT_LOAD = ("DiffusionPipeline",)


def pipeline_class(name: object, where: str) -> Any:
    """The diffusers pipeline class `name`, imported (some need torchvision, which is then named)."""
    import diffusers

    if name in RESOLVED_AT_LOAD:
        raise BenchError(f"{where}: pipeline.class {name} picks the class to load from the repository at load time; "
                         "name the concrete pipeline class (e.g. Flux2Pipeline)")
    if not isinstance(name, str) or not name.endswith("Pipeline") or name not in dir(diffusers):
        raise BenchError(f"{where}: pipeline.class {name!r} is not a pipeline of the installed diffusers "
                         f"{diffusers.__version__}")
    try:
        cls = getattr(diffusers, name)
    except (ImportError, RuntimeError, AttributeError) as error:
        raise BenchError(f"{where}: pipeline.class {name} cannot be imported here ({error})") from error
    if not isinstance(cls, type) or not issubclass(cls, diffusers.DiffusionPipeline) or cls is diffusers.DiffusionPipeline:
        raise BenchError(f"{where}: pipeline.class {name} is not a concrete DiffusionPipeline")
    return cls


def call_problems(call: object, cls: Any) -> tuple[dict[str, Any], list[str]]:
    """`call:` merged over DEFAULT_CALL, and every way it does not fit the class's `__call__`.

    Each name must be a named parameter of the pinned class's `__call__`: a `**kwargs` catch-all does not count
    (it would let `trust_remote_code` or a `custom_pipeline` URL through), and dunder names are never arguments.
    """
    if call is not None and not isinstance(call, dict):
        return dict(DEFAULT_CALL), [f"call must be a mapping, got {call!r}"]
    problems: list[str] = []
    unknown = sorted(set(call or {}) - set(DEFAULT_CALL))
    if unknown:
        problems.append(f"call has unknown keys {unknown}; known: {sorted(DEFAULT_CALL)}")
    mapping = {**DEFAULT_CALL, **{k: v for k, v in (call or {}).items() if k in DEFAULT_CALL}}
    if mapping["references_as"] not in REFERENCES_AS:
        problems.append(f"call.references_as must be one of {REFERENCES_AS}")
    if not isinstance(mapping["fixed"], dict):
        problems.append("call.fixed must be a mapping of argument -> value")
        mapping["fixed"] = {}
    tag = mapping["reference_tag"]
    if tag is not None and (not isinstance(tag, str) or "{index}" not in tag or mapping["references"] is None):
        problems.append(f"call.reference_tag must be text with {{index}} (the reference's 1-based number), for an "
                        f"entry that sends references; got {tag!r}")
        mapping["reference_tag"] = None
    parameters = {name for name, parameter in inspect.signature(cls.__call__).parameters.items()
                  if name != "self" and parameter.kind not in (inspect.Parameter.VAR_KEYWORD,
                                                               inspect.Parameter.VAR_POSITIONAL)}
    names = [(f"call.{key}", mapping[key]) for key in ("references", "prompt", "steps", "guidance", "height",
                                                      "width", "generator") if mapping[key] is not None]
    names += [(f"call.fixed.{name}", name) for name in mapping["fixed"]]
    for field, name in names:
        if isinstance(name, str) and name.startswith("__"):
            problems.append(f"{field} = {name!r} is a dunder name, never an argument")
        elif not isinstance(name, str) or name not in parameters:
            problems.append(f"{field} = {name!r} is not an argument of {cls.__name__}.__call__")
    for key in ("prompt", "steps", "height", "width", "generator"):
        if mapping[key] is None:
            problems.append(f"call.{key} cannot be null: every image needs it")
    return mapping, problems


def settings_problems(settings: dict[str, Any], call: dict[str, Any]) -> list[str]:
    """The entry's `settings` against what the adapter reads."""
    problems = []
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        problems.append(f"settings has unknown keys {unknown}; known: {list(SETTINGS[:7])}")
    required = DiffusersAdapter.required_settings + (("guidance",) if call["guidance"] is not None else ())
    missing = [key for key in required if key not in settings]
    if missing:
        problems.append(f"settings lack {', '.join(missing)}")
    if settings.get("dtype", "bfloat16") not in DTYPES:
        problems.append(f"settings.dtype must be one of {DTYPES}")
    if settings.get("offload", "none") not in OFFLOAD:
        problems.append(f"settings.offload must be one of {OFFLOAD}")
    return problems


def entry_problems(settings: dict[str, Any]) -> list[str]:
    """Every problem of a diffusers entry (its settings with `pipeline` and `call` merged in), all in one round:
    what `collapsebench validate` prints, and what the adapter refuses to be built with."""
    spec = settings.get("pipeline")
    if not isinstance(spec, dict):
        return ["model.yaml needs `pipeline: {class, repo, revision}`"]
    try:  # the pin itself is validate's and the schema's to check (and __init__ refuses a bad one)
        cls = pipeline_class(spec.get("class"), "pipeline")
    except BenchError as error:
        return [str(error).removeprefix("pipeline: ")]
    call, found = call_problems(settings.get("call"), cls)
    return found + settings_problems(settings, call)


@register
class DiffusersAdapter(Adapter):
    """A stock diffusers multi-reference pipeline: validated settings, pinned loading, seeded CPU generator."""

    name = "diffusers"
    needs_gpu = True
    required_settings: ClassVar[tuple[str, ...]] = ("height", "width", "steps")

    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__(settings)
        problems = entry_problems(self.settings)
        if problems:
            raise BenchError(f"adapter {self.name}: " + "; ".join(problems))
        spec = self.settings["pipeline"]
        self.pipeline_class = pipeline_class(spec["class"], f"adapter {self.name}")
        self.pin = WeightsPin.from_setting(spec, f"adapter {self.name}: pipeline")
        self.call, _ = call_problems(self.settings.get("call"), self.pipeline_class)
        self.pipe: Any = None
        self._commit: str | None = None

    @property
    def revision(self) -> str:
        return f"{self.pin.repo}@{self._commit or self.pin.revision or 'unresolved'}"

    def load(self) -> None:
        import torch

        _, self._commit = resolve(self.pin)  # a clear error, before diffusers' own, when the cache lacks it
        dtype = getattr(torch, self.settings.get("dtype", "bfloat16"))
        self.pipe = self.pipeline_class.from_pretrained(self.pin.repo, revision=self.pin.revision, dtype=dtype)
        device = self.settings.get("device", "cuda")
        if self.settings.get("offload", "none") == "model":
            self.pipe.enable_model_cpu_offload(device=device)  # weights larger than one GPU (e.g. FLUX.2-dev on 80 GB)
        else:
            self.pipe.to(device)
        self.pipe.set_progress_bar_config(disable=True)

    @staticmethod
    def generator(seed: int) -> Any:
        """A CPU generator: diffusers draws the initial noise on it, so a seed gives the same noise on any GPU."""
        import torch

        return torch.Generator("cpu").manual_seed(seed)

    def generate(self, prompt: str, subjects: list[Subject], references: list[Image.Image], seed: int) -> Generation:
        mapping = self.call
        if mapping["reference_tag"] is not None:
            prompt = tag_references(prompt, subjects, mapping["reference_tag"])
        call: dict[str, Any] = {
            mapping["prompt"]: prompt,
            mapping["height"]: int(self.settings["height"]),
            mapping["width"]: int(self.settings["width"]),
            mapping["steps"]: int(self.settings["steps"]),
            **dict(mapping["fixed"]),
        }
        if mapping["guidance"] is not None:
            call[mapping["guidance"]] = float(self.settings["guidance"])
        sent_references = self.arrange(references)
        if mapping["references"] is not None:
            call[mapping["references"]] = sent_references
        output = self.pipe(**call, **{mapping["generator"]: self.generator(seed)})
        sent = {
            **{key: value for key, value in call.items() if key not in (mapping["prompt"], mapping["references"])},
            "pipeline": self.pipeline_class.__name__,
            "references": [subject.id for subject in subjects] if mapping["references"] is not None else [],
            "references_as": mapping["references_as"] if mapping["references"] is not None else None,
            "reference_sizes": [list(image.size) for image in references],
            "seed": seed,
            "generator": "cpu",
        }
        return Generation(image=output.images[0], sent_prompt=prompt, sent=sent)

    def arrange(self, references: list[Image.Image]) -> Any:
        """The references in the form the call takes: a list, the first one, or one image side by side."""
        how = self.call["references_as"]
        if how == "list":
            return list(references)
        if how == "first":
            return references[0]
        strip = Image.new("RGB", (sum(r.width for r in references), max(r.height for r in references)), "white")
        x = 0
        for reference in references:
            strip.paste(reference.convert("RGB"), (x, 0))
            x += reference.width
        return strip


def tag_references(prompt: str, subjects: list[Subject], tag: str) -> str:
    """The prompt with `tag` (its {index} the reference's 1-based number) after each subject's phrase, the phrases
    found left to right in slot order, for pipelines that bind the i-th reference to a marker in the text."""
    parts, position = [], 0
    for index, subject in enumerate(subjects, start=1):
        found = prompt.find(subject.phrase, position)
        if found < 0:
            raise BenchError(f"subject phrase {subject.phrase!r} not found in order in the prompt {prompt!r}")
        end = found + len(subject.phrase)
        parts += [prompt[position:end], " " + tag.format(index=index)]
        position = end
    return "".join(parts) + prompt[position:]
