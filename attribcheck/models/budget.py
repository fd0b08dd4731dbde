"""A model's size, counted from its configs before any weight is allocated.

A suspect's configs are untrusted: `block_out_channels = [16384, 16384]` in a UNet config
makes diffusers allocate 17 GB before it reads a single weight. So each component's config is
first checked with arithmetic (a lower bound on its parameters from its widest layer, and a
bound on depth, which decides how long even an empty build takes), then built on torch's
"meta" device, which records shapes and allocates nothing, and its parameters counted. The
pipeline's total must stay within the budget; `max_params` (or ATTRIBCHECK_MAX_PARAMS)
raises it for larger models.
"""
from __future__ import annotations

import os
from pathlib import Path

from attribcheck.errors import InputError, IntegrityError

# SDXL's whole pipeline (UNet 2.6 G, two text encoders, VAE) is 3.5 G parameters.
MAX_PARAMS = 4_000_000_000
ENV = "ATTRIBCHECK_MAX_PARAMS"
# Config entries that set how many layers an (even empty) build creates, and their bound:
# SDXL's deepest is 10 transformer layers per block, CLIP-bigG's 32 layers, Flux's 57 blocks.
DEPTH_WORDS = ("layers", "depth", "num_blocks", "num_attention_heads")
MAX_DEPTH = 256
# A native resolution (pixels, or latents for a UNet) no larger than the protocol's largest side:
# with no height or width in the protocol, a pipeline generates at its config's sample_size.
MAX_SAMPLE_SIZE = 4096
MAX_LIST = 64
# Widths whose square bounds the parameters from below: a UNet or VAE level holds at least one
# ResNet block, two 3x3 convolutions c -> c (18 c^2); a transformer layer holds at least its
# attention projections (4 h^2).
WIDTHS = {"block_out_channels": 18, "hidden_size": 4, "d_model": 4, "n_embd": 4, "inner_dim": 4,
          "cross_attention_dim": 1, "intermediate_size": 1, "d_ff": 1}


def limit(max_params: int | None = None) -> int:
    """The budget: the argument, else ATTRIBCHECK_MAX_PARAMS, else MAX_PARAMS."""
    if max_params is not None:
        return int(max_params)
    value = os.environ.get(ENV, "").strip()
    if value:
        if not value.isdigit():
            raise InputError(f"{value!r} is not a whole number of parameters", ENV)
        return int(value)
    return MAX_PARAMS


def _ints(value) -> list[int]:
    items = value if isinstance(value, list) else [value]
    items = [v for item in items for v in (item if isinstance(item, list) else [item])]  # [[1, 2], [10]]
    return [v for v in items if isinstance(v, int) and not isinstance(v, bool)]


def check_config(config: dict, where: str | Path, budget: int, nested: int = 0) -> None:
    """Arithmetic on a config's numbers, before anything is built: depth within MAX_DEPTH,
    lists within MAX_LIST, and no width whose layers alone exceed the budget."""
    for key, value in config.items():
        if isinstance(value, dict) and nested < 2:  # a text_config inside a CLIPConfig
            check_config(value, where, budget, nested + 1)
        if isinstance(value, list) and len(value) > MAX_LIST:
            raise InputError(f"a list of {len(value)} entries (at most {MAX_LIST})", where, key)
        numbers = _ints(value)
        if any(v < 0 for v in numbers):
            raise InputError(f"{value!r}: sizes are not negative", where, key)
        if any(w in key for w in DEPTH_WORDS) and any(v > MAX_DEPTH for v in numbers):
            raise InputError(f"{max(numbers)} is over {MAX_DEPTH}: no text-to-image model is that deep", where, key)
        if key == "sample_size" and any(v > MAX_SAMPLE_SIZE for v in numbers):
            raise InputError(f"{max(numbers)} is over {MAX_SAMPLE_SIZE}: images that large are not a protocol's",
                             where, key)
        if key in WIDTHS and numbers and WIDTHS[key] * max(numbers) ** 2 > budget:
            raise InputError(f"{max(numbers)} wide needs over {WIDTHS[key] * max(numbers) ** 2:,} parameters, "
                             f"over the budget of {budget:,} (raise it with {ENV} or max_params)", where, key)


def _widest(config: dict) -> str:
    """The field to name when a model is over budget: its widest width entry."""
    sizes = {k: max(_ints(config[k]) or [0]) for k in WIDTHS if k in config}
    return max(sizes, key=lambda k: sizes[k]) if sizes else "config"


def count(library: str, class_name: str, config: dict, where: Path) -> int:
    """The parameters of a diffusers or transformers model built from `config` on the meta
    device (nothing allocated); 0 for components without weights (schedulers, tokenizers)."""
    import importlib

    import torch

    module = importlib.import_module(library)  # library is one of LIBRARIES, checked by the caller
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise IntegrityError(f"{class_name!r} is not a {library} class", where, "_class_name")
    try:
        with torch.device("meta"):
            if library == "diffusers":
                from diffusers import ModelMixin

                if not issubclass(cls, ModelMixin):
                    return 0
                model = cls.from_config(config)
            else:
                from transformers import PreTrainedModel

                if not issubclass(cls, PreTrainedModel):
                    return 0
                if cls.config_class is None:  # a model class without a config class cannot be built
                    raise TypeError(f"{class_name} has no config class")
                model = cls(cls.config_class.from_dict(config))
    except Exception as e:  # noqa: BLE001 - a config its class rejects: loading would fail as well
        raise InputError(f"{class_name} cannot be built from it: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
                         where) from None
    return sum(p.numel() for p in model.parameters())


def check_folder(folder: str | Path, max_params: int | None = None, libraries=("diffusers", "transformers")) -> int:
    """The parameters of the pipeline in `folder` (model_index.json and each component's
    config.json), or an InputError naming the config and field that breaks the budget."""
    from attribcheck.safe_files import read_json_object

    folder = Path(folder)
    budget = limit(max_params)
    index = read_json_object(folder / "model_index.json", "not a diffusers pipeline folder (no model_index.json)")
    total = 0
    for name, value in index.items():
        if name.startswith("_") or not (isinstance(value, list) and len(value) == 2 and value[0] in libraries):
            continue
        path = folder / name / "config.json"
        if not path.exists():
            continue  # a tokenizer or scheduler folder without one: loading says what is missing
        config = read_json_object(path)
        check_config(config, path, budget)
        total += count(value[0], str(value[1]), config, path)
        if total > budget:
            raise InputError(f"{name} brings the pipeline to {total:,} parameters, over the budget of {budget:,} "
                             f"(raise it with {ENV} or max_params)", path, _widest(config))
    return total


def check_built(factories: dict, where: str | Path, max_params: int | None = None, config: dict | None = None) -> int:
    """The parameters of models built by `factories` (name -> a function building one) on
    the meta device, refused over the budget before any of them is built for real; `config`,
    the numbers they are built from, is checked by arithmetic first (check_config)."""
    import torch

    budget, total = limit(max_params), 0
    if config is not None:
        check_config({k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}, where, budget)
    for name, build in factories.items():
        with torch.device("meta"):
            total += sum(p.numel() for p in build().parameters())
        if total > budget:
            raise InputError(f"{name} brings the model to {total:,} parameters, over the budget of {budget:,} "
                             f"(raise it with {ENV} or max_params)", where, name)
    return total
