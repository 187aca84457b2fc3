"""A diffusers pipeline's tiny twin: the entry's pipeline class with random-weight components, saved to a folder.

The adapter then loads the folder with `from_pretrained` exactly as it loads the real snapshot: same pipeline
class, same component classes (model_index.json records them), only the sizes differ. A component is made from
`{class, config}` (a diffusers model or scheduler, or a transformers model whose config class takes `config`) or
from `{builder}`, a tokenizer or processor built in code (collapsebench.testing.processors); `builder: NAME` at
the top names one of the package's whole-pipeline builders instead (collapsebench.testing.tiny).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from collapsebench.core.errors import BenchError
from collapsebench.preflight.spec import PreflightSpec


def build_twin(spec: PreflightSpec, pipeline_class: Any, folder: Path) -> Path:
    """Save `pipeline_class`'s twin described by `spec` into `folder` and return it."""
    if spec.builder is not None:
        from collapsebench.testing.tiny import FLUX2_BUILDERS

        if spec.builder not in FLUX2_BUILDERS:
            raise BenchError(f"{spec.path}: builder {spec.builder!r} unknown; known: {sorted(FLUX2_BUILDERS)}")
        if spec.builder != pipeline_class.__name__:
            raise BenchError(f"{spec.path}: builder {spec.builder} makes a {spec.builder}, the entry loads a "
                             f"{pipeline_class.__name__}")
        FLUX2_BUILDERS[spec.builder](folder)
        return folder
    import torch

    torch.manual_seed(0)
    parts = {name: component(name, part, spec) for name, part in spec.components.items()}
    pipeline_class(**parts).save_pretrained(folder)
    return folder


def component(name: str, part: dict[str, Any], spec: PreflightSpec) -> Any:
    """One pipeline component, random weights from its config, or a tokenizer/processor built in code."""
    if "builder" in part:
        from collapsebench.testing.processors import BUILDERS

        if part["builder"] not in BUILDERS:
            raise BenchError(f"{spec.path}: components.{name}.builder {part['builder']!r} unknown; known: "
                             f"{sorted(BUILDERS)}")
        return BUILDERS[part["builder"]]()
    cls = component_class(name, part["class"], spec)
    config = dict(part.get("config") or {})
    if hasattr(cls, "config_class") and getattr(cls, "config_class", None) is not None:  # a transformers model
        return cls(cls.config_class(**config))
    return cls.from_config(config) if hasattr(cls, "from_config") else cls(**config)


def component_class(name: str, class_name: object, spec: PreflightSpec) -> Any:
    """`class_name` from diffusers, else transformers (the libraries model_index.json names)."""
    import diffusers
    import transformers

    for library in (diffusers, transformers):
        if isinstance(class_name, str) and class_name in dir(library):
            try:
                return getattr(library, class_name)
            except (ImportError, RuntimeError) as error:
                raise BenchError(f"{spec.path}: components.{name}: {class_name} cannot be imported here "
                                 f"({error})") from error
    raise BenchError(f"{spec.path}: components.{name}.class {class_name!r} is in neither diffusers "
                     f"{diffusers.__version__} nor transformers {transformers.__version__}")
