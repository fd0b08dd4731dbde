"""One suspect as the audit sees it (what a manifest's [[suspects]] or [[innocents]] entry, or
a library caller, describes), and how it is opened: through its registered kind, behind the
generation cache where the kind declares an identity."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class SuspectSpec:
    name: str
    path: Path | None
    expect: str
    kind: str = "diffusers"
    config: Path | None = None  # component configs for a single-file checkpoint
    repo: str | None = None  # diffusers: a repo id, resolved in the local Hugging Face cache
    revision: str | None = None
    variant: str | None = None  # diffusers: e.g. "fp16" (model.fp16.safetensors)
    lora: Path | None = None  # diffusers: a LoRA adapter loaded over the pipeline
    lora_scale: float = 1.0
    options: object = field(default=None, hash=False, compare=False)  # the kind's validated options
    postprocess: tuple[str, ...] = ()  # what the suspect's service does to its images (audit/postprocess.py)
    base: Path | None = field(default=None, hash=False, compare=False)  # the manifest's folder


def open_generator(spec: SuspectSpec, protocol=None, runtime=None, cache=None, max_side: int | None = None):
    """A Generator for a suspect, through its registered kind (attribcheck.models.kinds).

    With a GenerationCache, a kind that declares an identity is wrapped in it and opened only
    on a miss (torch is imported only when a diffusers suspect is really opened)."""
    from attribcheck.models import kinds
    from attribcheck.models.protocol import QueryProtocol, Runtime

    kind = kinds.get(spec.kind)
    protocol, runtime = protocol or QueryProtocol(), runtime or Runtime()
    if cache is None or kind.identity is None:
        return kind.open(spec, protocol, runtime)
    from attribcheck.models.cached_generator import CachedGenerator, identity_of

    identity = identity_of({"kind": kind.name, **kind.identity(spec)})
    return CachedGenerator(spec.name, identity, lambda: kind.open(spec, protocol, runtime), cache, protocol, runtime,
                           max_side)
