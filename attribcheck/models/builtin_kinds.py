"""The suspect kinds attribcheck ships, registered in attribcheck.models.kinds.

Nothing heavy is imported here: torch and diffusers load when a diffusers suspect is opened,
which, behind the generation cache, is only on a miss.
"""
from __future__ import annotations

from attribcheck.models.kind import SuspectKind


def _fp(path) -> str | None:
    from attribcheck.fingerprint import fingerprint

    return fingerprint(path) if path is not None else None


def diffusers_identity(spec) -> dict:
    """Everything loaded into the pipeline, by content: weights (every file of the folder or
    the checkpoint), the single-file config folder, the LoRA file and its scale, the variant."""
    from attribcheck.models.diffusers_generator import resolve_model

    return {"model": _fp(resolve_model(spec)), "config": _fp(spec.config), "variant": spec.variant,
            "lora": _fp(spec.lora), "lora_scale": spec.lora_scale if spec.lora else None}


def open_diffusers(spec, protocol, runtime):
    from attribcheck.models.diffusers_generator import DiffusersGenerator

    return DiffusersGenerator.from_spec(spec, protocol, runtime)


def open_folder(spec, protocol, runtime):
    from attribcheck.models.folder_generator import FolderGenerator

    return FolderGenerator(spec.path, spec.name)


DIFFUSERS = SuspectKind("diffusers", open_diffusers, identity=diffusers_identity, needs_path=False,
                        description="a diffusers text-to-image pipeline: a local folder, a .safetensors file, "
                                    "or a repo id in the local Hugging Face cache")
FOLDER = SuspectKind("folder", open_folder, description="images collected from a black-box suspect "
                                                        "(queries.jsonl: prompt, seed, file)")


def _http():
    from attribcheck.models.http_generator import HttpOptions, http_identity, open_http

    return SuspectKind("http", open_http, identity=http_identity, options=HttpOptions, needs_path=False, batched=False,
                       description="a suspect behind an HTTP API (request and response shapes in options)")


BUILTIN = [DIFFUSERS, FOLDER, _http()]
