"""A Generator over any diffusers text-to-image pipeline, loaded from local files only."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from attribcheck.errors import InputError, IntegrityError
from attribcheck.models.protocol import QueryProtocol, Runtime


def quiet() -> None:
    """Loading progress bars and advice are noise in an audit's output; errors still show."""
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def dtype_kwarg(torch_dtype) -> dict:
    """`dtype=` where diffusers has it (it deprecates `torch_dtype`), `torch_dtype=` before."""
    from diffusers.utils import deprecation_utils

    return {"dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype": torch_dtype}


LIBRARIES = ("diffusers", "transformers")  # where a pipeline's components may come from


def check_model_index(folder: Path) -> None:
    """A suspect's model_index.json names the classes diffusers will build: only diffusers
    pipelines, and components from diffusers or transformers (no custom code, ever)."""
    import json

    import diffusers

    path = folder / "model_index.json"
    if not path.is_file():
        raise InputError("not a diffusers pipeline folder (no model_index.json)", folder)
    try:
        index = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"not valid JSON ({e})", path) from e
    if not isinstance(index, dict):
        raise InputError("not a JSON object", path)
    cls = getattr(diffusers, str(index.get("_class_name")), None)
    if not (isinstance(cls, type) and issubclass(cls, diffusers.DiffusionPipeline)):
        raise IntegrityError(f"{index.get('_class_name')!r} is not a diffusers pipeline", path, "_class_name")
    for name, value in index.items():
        if name.startswith("_") or isinstance(value, (bool, int, float)):  # pipeline options
            continue
        if not (isinstance(value, list) and len(value) == 2 and (value[0] is None or value[0] in LIBRARIES)):
            raise IntegrityError(f"{value!r}: components must come from {' or '.join(LIBRARIES)}", path, name)


def load_pipeline(path: str | Path, dtype: str = "float32", config: str | Path | None = None):
    """A pipeline from a local folder (model_index.json) or a single .safetensors checkpoint.

    Safetensors only and no remote code: a suspect's files are untrusted input. A single
    file needs `config`, a local folder holding the pipeline's component configs, because
    the configs that diffusers would otherwise fetch from a hub are not reachable offline.
    """
    import torch
    from diffusers import DiffusionPipeline, StableDiffusionPipeline

    quiet()
    path = Path(path)
    common = dict(**dtype_kwarg(getattr(torch, dtype)), use_safetensors=True, local_files_only=True)
    if path.is_dir():
        check_model_index(path)
        return DiffusionPipeline.from_pretrained(str(path), trust_remote_code=False, **common)
    if not path.exists():
        raise InputError("no such model folder or file", path)
    if path.suffix != ".safetensors":
        raise InputError("only pipeline folders and .safetensors files are loaded (no pickles)", path)
    if config is None:
        raise InputError("a single-file checkpoint needs config = <local pipeline folder>", path, "config")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        original_layout = any(k.startswith("model.diffusion_model.") for k in f.keys())
    if original_layout:  # a whole checkpoint in the original Stable Diffusion layout
        return StableDiffusionPipeline.from_single_file(str(path), config=str(config), **common)
    # A fine-tuned UNet shared as one file (diffusers layout) over its base pipeline's other parts.
    from diffusers import UNet2DConditionModel

    pipe = load_pipeline(config, dtype)
    pipe.unet = UNet2DConditionModel.from_single_file(str(path), config=str(config), subfolder="unet",
                                                      **dtype_kwarg(getattr(torch, dtype)),
                                                      local_files_only=True)
    return pipe


class DiffusersGenerator:
    """Generates with a diffusers pipeline under a QueryProtocol, computed as a Runtime says.

    Every (prompt, seed) pair gets its own torch.Generator, so an image does not depend on
    what else shares its batch (and the batch size is a runtime option, not part of a key).
    """

    def __init__(self, pipeline, protocol: QueryProtocol | None = None, name: str = "model",
                 runtime: Runtime | None = None):
        self.name = name
        self.protocol = protocol or QueryProtocol()
        self.runtime = runtime or Runtime()
        self.runtime.apply_threads()
        pipeline.scheduler = self.protocol.scheduler_class().from_config(pipeline.scheduler.config)
        pipeline.set_progress_bar_config(disable=True)
        if hasattr(pipeline, "safety_checker"):
            pipeline.safety_checker = None  # our checks need the raw images
        self.pipeline = pipeline.to(self.runtime.device)

    @classmethod
    def from_path(cls, path, protocol: QueryProtocol | None = None, name: str | None = None,
                  config=None, runtime: Runtime | None = None) -> "DiffusersGenerator":
        protocol = protocol or QueryProtocol()
        return cls(load_pipeline(path, protocol.dtype, config), protocol, name or Path(path).name, runtime)

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[np.ndarray]:
        import torch

        if len(prompts) != len(seeds):
            raise ValueError("prompts and seeds pair up: give as many of each")
        p, b = self.protocol, self.runtime.batch_size
        out: list[np.ndarray] = []
        for i in range(0, len(prompts), b):
            batch_p = list(prompts[i:i + b])
            gens = [torch.Generator(device="cpu").manual_seed(int(seed)) for seed in seeds[i:i + b]]
            with torch.no_grad():
                result = self.pipeline(batch_p, num_inference_steps=p.steps, guidance_scale=p.guidance_scale,
                                       height=p.height, width=p.width, generator=gens, output_type="np")
            # clip keeps NaN as NaN: the degenerate-output check still sees it
            out.extend(np.clip(np.asarray(img, dtype=np.float32), 0, 1) for img in result.images)
        return out
