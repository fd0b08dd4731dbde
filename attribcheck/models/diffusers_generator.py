"""A Generator over any diffusers text-to-image pipeline, loaded from local files only."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from attribcheck.models.generator import SamplerConfig


def quiet() -> None:
    """Loading progress bars and advice are noise in an audit's output; errors still show."""
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


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
    torch_dtype = getattr(torch, dtype)
    common = dict(torch_dtype=torch_dtype, use_safetensors=True, local_files_only=True)
    if path.is_dir():
        if not (path / "model_index.json").exists():
            raise FileNotFoundError(f"{path} is not a diffusers pipeline folder (no model_index.json)")
        return DiffusionPipeline.from_pretrained(str(path), trust_remote_code=False, **common)
    if path.suffix != ".safetensors":
        raise ValueError(f"{path}: only pipeline folders and .safetensors files are loaded")
    if config is None:
        raise ValueError(f"{path}: a single-file checkpoint needs config=<local pipeline folder>")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        original_layout = any(k.startswith("model.diffusion_model.") for k in f.keys())
    if original_layout:  # a whole checkpoint in the original Stable Diffusion layout
        return StableDiffusionPipeline.from_single_file(str(path), config=str(config), **common)
    # A fine-tuned UNet shared as one file (diffusers layout) over its base pipeline's other parts.
    from diffusers import UNet2DConditionModel

    pipe = load_pipeline(config, dtype)
    pipe.unet = UNet2DConditionModel.from_single_file(str(path), config=str(config), subfolder="unet",
                                                      torch_dtype=torch_dtype, local_files_only=True)
    return pipe


class DiffusersGenerator:
    """Generates with a diffusers pipeline under a SamplerConfig.

    Every (prompt, seed) pair gets its own torch.Generator, so an image does not depend on
    what else shares its batch.
    """

    def __init__(self, pipeline, sampler: SamplerConfig | None = None, name: str = "model"):
        import diffusers

        self.name = name
        self.sampler = sampler or SamplerConfig()
        scheduler_cls = getattr(diffusers, self.sampler.scheduler)
        pipeline.scheduler = scheduler_cls.from_config(pipeline.scheduler.config)
        pipeline.set_progress_bar_config(disable=True)
        if hasattr(pipeline, "safety_checker"):
            pipeline.safety_checker = None  # our checks need the raw images
        self.pipeline = pipeline.to(self.sampler.device)

    @classmethod
    def from_path(cls, path, sampler: SamplerConfig | None = None, name: str | None = None,
                  config=None) -> "DiffusersGenerator":
        sampler = sampler or SamplerConfig()
        return cls(load_pipeline(path, sampler.dtype, config), sampler, name or Path(path).name)

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[np.ndarray]:
        import torch

        if len(prompts) != len(seeds):
            raise ValueError("prompts and seeds pair up: give as many of each")
        s = self.sampler
        out: list[np.ndarray] = []
        for i in range(0, len(prompts), s.batch_size):
            batch_p = list(prompts[i:i + s.batch_size])
            gens = [torch.Generator(device="cpu").manual_seed(int(seed)) for seed in seeds[i:i + s.batch_size]]
            with torch.no_grad():
                result = self.pipeline(batch_p, num_inference_steps=s.steps, guidance_scale=s.guidance_scale,
                                       height=s.height, width=s.width, generator=gens, output_type="np")
            out.extend(np.clip(np.asarray(img, dtype=np.float32), 0, 1) for img in result.images)
        return out
