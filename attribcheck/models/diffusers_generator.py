"""A Generator over any diffusers text-to-image pipeline, loaded from local files only."""
from __future__ import annotations

import logging

from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

import numpy as np

from attribcheck.errors import InputError, IntegrityError
from attribcheck.models import budget
from attribcheck.models.protocol import QueryProtocol, Runtime
from attribcheck.safe_files import check_tree, read_json_object, regular_file

logger = logging.getLogger(__name__)


@contextmanager
def quiet():
    """Loading progress bars and advice are noise in an audit's output; errors still show. Only
    for the duration of a load: the caller's own diffusers and transformers settings (a user's
    pytest run, say) are restored after."""
    import diffusers
    import transformers

    libs = (diffusers.utils.logging, transformers.utils.logging)
    saved = [(lib.get_verbosity(), lib.is_progress_bar_enabled()) for lib in libs]
    for lib in libs:
        lib.set_verbosity_error()
        lib.disable_progress_bar()
    try:
        yield
    finally:
        for lib, (level, bar) in zip(libs, saved):
            lib.set_verbosity(level)
            (lib.enable_progress_bar if bar else lib.disable_progress_bar)()


def silence() -> None:
    """Process-wide quiet, for the lab's own commands (a world build is a process of its own);
    the library itself only ever uses `quiet()`."""
    quiet().__enter__()


def dtype_kwarg(torch_dtype) -> dict:
    """`dtype=` where diffusers has it (it deprecates `torch_dtype`), `torch_dtype=` before."""
    from diffusers.utils import deprecation_utils

    return {"dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype": torch_dtype}


LIBRARIES = ("diffusers", "transformers")  # where a pipeline's components may come from


def check_model_index(folder: Path) -> None:
    """A suspect's model_index.json names the classes diffusers will build: only diffusers
    pipelines, and components from diffusers or transformers (no custom code, ever)."""
    import diffusers

    path = folder / "model_index.json"
    index = read_json_object(path, "not a diffusers pipeline folder (no model_index.json)")
    cls = getattr(diffusers, str(index.get("_class_name")), None)
    if not (isinstance(cls, type) and issubclass(cls, diffusers.DiffusionPipeline)):
        raise IntegrityError(f"{index.get('_class_name')!r} is not a diffusers pipeline", path, "_class_name")
    for name, value in index.items():
        if name.startswith("_") or isinstance(value, (bool, int, float)):  # pipeline options
            continue
        if not (isinstance(value, list) and len(value) == 2 and (value[0] is None or value[0] in LIBRARIES)):
            raise IntegrityError(f"{value!r}: components must come from {' or '.join(LIBRARIES)}", path, name)


LORA_MARKERS = ("lora_A", "lora_B", "lora_down", "lora_up", "lora.down", "lora.up", "lora_te", "lora_unet")


def is_lora_file(path: Path) -> bool:
    """Whether a .safetensors file holds LoRA adapter weights rather than a model."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())
    return bool(keys) and sum(any(m in k for m in LORA_MARKERS) for k in keys) >= len(keys) // 2


def _not_a_lora(path: Path) -> None:
    if path.suffix == ".safetensors" and is_lora_file(path):
        raise InputError("is a LoRA adapter, not a model: give the base pipeline as path (or repo) and this file "
                         "as lora", path, "path")
    if path.is_dir() and not (path / "model_index.json").is_file():
        loras = [p.name for p in path.glob("*.safetensors") if is_lora_file(p)]
        if loras:
            raise InputError(f"holds LoRA adapter weights ({loras[0]}), not a pipeline: give the base pipeline as "
                             f"path (or repo) and {loras[0]} as lora", path, "path")


def resolve_model(spec) -> Path:
    """The local folder or file a diffusers suspect names: its path, or its repo id looked up
    in the local Hugging Face cache (never downloaded: an audit does not reach a hub)."""
    if spec.repo is None:
        return Path(spec.path)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(spec.repo, revision=spec.revision, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError, FileNotFoundError, OSError) as e:
        from huggingface_hub import constants

        raise InputError(f"{spec.repo!r}{'@' + spec.revision if spec.revision else ''} is not in the local "
                         f"Hugging Face cache ({constants.HF_HUB_CACHE}); download it first "
                         f"(`hf download {spec.repo}`)", spec.name, "repo") from e


def load_pipeline(path: str | Path, dtype: str = "float32", config: str | Path | None = None,
                  variant: str | None = None, max_params: int | None = None):
    """A pipeline from a local folder (model_index.json) or a single .safetensors checkpoint.

    Safetensors only and no remote code: a suspect's files are untrusted input. A single
    file needs `config`, a local folder holding the pipeline's component configs, because
    the configs that diffusers would otherwise fetch from a hub are not reachable offline.
    A folder loads through AutoPipelineForText2Image, so SDXL, PixArt and the other
    text-to-image pipelines load alike (an img2img folder as its text-to-image twin).
    """
    import time

    t0 = time.perf_counter()
    logger.info("loading %s (%s%s)", path, dtype, f", variant {variant}" if variant else "")
    with quiet():
        pipe = _load_pipeline(Path(path), config, dtype, variant, max_params)
    logger.info("loaded %s: %s in %.1f s", path, type(pipe).__name__, time.perf_counter() - t0)
    return pipe


def _load_pipeline(path: Path, config, dtype: str, variant: str | None, max_params: int | None):
    import torch
    from diffusers import StableDiffusionPipeline

    common = dict(**dtype_kwarg(getattr(torch, dtype)), use_safetensors=True, local_files_only=True)
    if path.is_dir():
        _checked(path, max_params)
        return _from_folder(path, variant, common)
    if not path.exists():
        raise InputError("no such model folder or file", path)
    if path.suffix != ".safetensors":
        raise InputError("only pipeline folders and .safetensors files are loaded (no pickles)", path)
    regular_file(path)
    _not_a_lora(path)
    if config is None:
        raise InputError("a single-file checkpoint needs config = <local pipeline folder>", path, "config")
    check_tree(Path(config))
    if (Path(config) / "model_index.json").is_file():
        budget.check_folder(config, max_params)
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


def _checked(folder: Path, max_params: int | None) -> None:
    """Before diffusers opens anything: regular files only (a FIFO or /dev/zero would hang
    it), allowed classes, and a parameter count within the budget (nothing allocated yet)."""
    check_tree(folder)
    _not_a_lora(folder)
    check_model_index(folder)
    budget.check_folder(folder, max_params)


def _from_folder(path: Path, variant: str | None, common: dict):
    from diffusers import AutoPipelineForText2Image, DiffusionPipeline

    kwargs = dict(common, trust_remote_code=False)
    if variant is not None:
        if not any(path.rglob(f"*.{variant}.safetensors")):
            raise InputError(f"no *.{variant}.safetensors files in the folder", path, "variant")
        kwargs["variant"] = variant
    try:
        return AutoPipelineForText2Image.from_pretrained(str(path), **kwargs)
    except ValueError as e:  # a pipeline class AutoPipeline does not map: load it as it is
        if "AutoPipeline" not in str(e) and "not supported" not in str(e):
            raise
        return DiffusionPipeline.from_pretrained(str(path), **kwargs)


def add_lora(pipeline, lora: Path, scale: float = 1.0):
    """A LoRA adapter fused into the pipeline's weights at `scale` (diffusers' load_lora_weights,
    which needs peft: `pip install 'attribcheck[lora]'`)."""
    lora = Path(lora)
    if lora.suffix != ".safetensors" or not lora.is_file():
        raise InputError("a LoRA adapter is one .safetensors file (no pickles)", lora, "lora")
    regular_file(lora, field="lora")
    try:
        import peft  # noqa: F401
    except ImportError:
        raise InputError("loading a LoRA adapter needs peft: pip install 'attribcheck[lora]'", lora, "lora") from None
    if not is_lora_file(lora):
        raise InputError("holds no LoRA adapter weights (lora_A/lora_B or lora_down/lora_up)", lora, "lora")
    try:
        pipeline.load_lora_weights(str(lora.parent), weight_name=lora.name, adapter_name="suspect")
    except (ValueError, KeyError, RuntimeError) as e:
        raise InputError(f"does not fit the base pipeline: {str(e).splitlines()[0]}", lora, "lora") from e
    pipeline.fuse_lora(lora_scale=scale, adapter_names=["suspect"])
    return pipeline


# Memory beyond the weights at 512² in float32, measured on SD-1.5 shapes on the CPU with VAE
# slicing (python -m attribcheck.bench realsize; peak RSS 5.35 GiB at one image, 5.62 at two, 3.97
# of weights): each image of a batch (latents, UNet activations), and the decoder once (sliced,
# it decodes one image at a time). Both scale with the pixels and the dtype's width.
BYTES_PER_IMAGE_512 = int(0.3 * 2 ** 30)
DECODE_BYTES_512 = int(1.1 * 2 ** 30)
FREE_SHARE = 0.8  # of the memory free now: the rest is the allocator's slack and everyone else's


def free_memory(device: str) -> int:
    """Bytes free now on the device: the GPU's, or the machine's available memory."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.mem_get_info(torch.device(device))[0]
    try:
        import psutil

        return psutil.virtual_memory().available
    except ImportError:
        import os

        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def fitting_batch(requested: int, height: int, width: int, dtype: str, device: str) -> int:
    """The runtime's batch size, cut to what free memory holds (at least 1). Safe to change:
    every image has its own generator, so the batch never changes an image."""
    scale = (height * width) / 512 ** 2 * (4 if dtype == "float32" else 2) / 4
    room = free_memory(device) * FREE_SHARE - DECODE_BYTES_512 * scale
    return max(1, min(requested, int(room // (BYTES_PER_IMAGE_512 * scale))))


class DiffusersGenerator:
    """Generates with a diffusers pipeline under a QueryProtocol, computed as a Runtime says.

    Every (prompt, seed) pair gets its own torch.Generator, so an image does not depend on
    what else shares its batch (and the batch size is a runtime option, not part of a key).
    Attention runs through PyTorch's scaled_dot_product_attention (diffusers' default
    AttnProcessor2_0; the bench checks it). The VAE decodes one image at a time (slicing): at
    512² its decoder is what peaks, and sliced it peaks as for one image whatever the batch.
    Never tiling: tiles are blended, which changes the image.
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
        if hasattr(getattr(pipeline, "vae", None), "enable_slicing"):
            pipeline.vae.enable_slicing()
        self.pipeline = pipeline.to(self.runtime.device)

    @classmethod
    def from_path(cls, path, protocol: QueryProtocol | None = None, name: str | None = None,
                  config=None, runtime: Runtime | None = None) -> "DiffusersGenerator":
        protocol = protocol or QueryProtocol()
        return cls(load_pipeline(path, protocol.dtype, config), protocol, name or Path(path).name, runtime)

    @classmethod
    def from_spec(cls, spec, protocol: QueryProtocol | None = None,
                  runtime: Runtime | None = None) -> "DiffusersGenerator":
        """A manifest's diffusers suspect: path or repo, variant, single-file config, LoRA."""
        protocol = protocol or QueryProtocol()
        pipe = load_pipeline(resolve_model(spec), protocol.dtype, spec.config, spec.variant)
        if spec.lora is not None:
            add_lora(pipe, spec.lora, spec.lora_scale)
        return cls(pipe, protocol, spec.name, runtime)

    def _size(self) -> tuple[int, int]:
        """The answers' height and width: the protocol's, else the pipeline's native size."""
        pipe = self.pipeline
        native = getattr(pipe, "default_sample_size", None)
        native = native * getattr(pipe, "vae_scale_factor", 8) if isinstance(native, int) else 512
        return self.protocol.height or native, self.protocol.width or native

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[np.ndarray]:
        import torch

        if len(prompts) != len(seeds):
            raise ValueError("prompts and seeds pair up: give as many of each")
        p = self.protocol
        b = fitting_batch(self.runtime.batch_size, *self._size(), p.dtype, self.runtime.device)
        out: list[np.ndarray] = []
        for i in range(0, len(prompts), b):
            batch_p = list(prompts[i:i + b])
            gens = [torch.Generator(device="cpu").manual_seed(int(seed)) for seed in seeds[i:i + b]]
            with torch.no_grad():
                result = self.pipeline(batch_p, num_inference_steps=p.steps, guidance_scale=p.guidance_scale,
                                       height=p.height, width=p.width, generator=gens, output_type="np")
            # clip keeps NaN as NaN: the degenerate-output check still sees it
            # contiguous, as a cached answer is: a distance summed in another memory order can
            # differ in its last bit, and cached and uncached audits must agree exactly
            out.extend(np.ascontiguousarray(np.clip(np.asarray(img, dtype=np.float32), 0, 1)) for img in result.images)
        return out
