"""Model transformations that only touch stored weights: a copy of a pipeline folder with its
UNet (and text encoder) cast, quantized, or averaged with another model's."""
from __future__ import annotations

import shutil
from pathlib import Path

from attribcheck.errors import InputError

UNET = Path("unet") / "diffusion_pytorch_model.safetensors"
TEXT = Path("text_encoder") / "model.safetensors"


def clone(src: str | Path, out: str | Path) -> Path:
    """A self-contained copy of a pipeline folder (links to shared parts resolved: a cached
    model must not depend on where the world lies)."""
    src, out = Path(src), Path(out)
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(src, out, ignore=shutil.ignore_patterns(".done"))
    return out


def read(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def write(tensors: dict, path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata={"format": "pt"})


def cast_round_trip(tensors: dict, dtype: str) -> dict:
    """Each floating tensor to `dtype` and back to its own dtype (what serving in that dtype does)."""
    import torch

    to = getattr(torch, dtype)
    return {k: v.to(to).to(v.dtype) if v.is_floating_point() else v for k, v in tensors.items()}


def int8_round_trip(tensors: dict, per_channel: bool = True) -> dict:
    """Weight-only symmetric int8 (absmax) quantization and back: each matrix or kernel (ndim >= 2)
    gets one scale per output channel, or one per tensor; biases and norms stay as they are,
    as weight-only int8 schemes leave them."""
    import torch

    out = {}
    for k, v in tensors.items():
        if not v.is_floating_point() or v.ndim < 2:
            out[k] = v
            continue
        w = v.float()
        dims = tuple(range(1, w.ndim)) if per_channel else tuple(range(w.ndim))
        scale = w.abs().amax(dim=dims, keepdim=True).clamp_min(1e-12) / 127
        out[k] = (torch.round(w / scale).clamp(-127, 127) * scale).to(v.dtype)
    return out


def average(a: dict, b: dict, share_b: float) -> dict:
    """(1 - share_b) * a + share_b * b, tensor by tensor, in a's dtypes (a merge of two fine-tunes
    of one base: their weights stay in one basin, so the average is a working model)."""
    if a.keys() != b.keys() or any(v.shape != b[k].shape for k, v in a.items()):
        raise ValueError("its weights differ from the merged model's in names or shapes: not one architecture")
    return {k: ((1 - share_b) * v.float() + share_b * b[k].float()).to(v.dtype) if v.is_floating_point() else v
            for k, v in a.items()}


def transform(src: str | Path, out: str | Path, unet_fn, text_fn=None, partner: str | Path | None = None) -> Path:
    """Copy `src` to `out`, rewriting its UNet weights with unet_fn(weights[, partner's]) and its text
    encoder's with text_fn (left alone when None)."""
    src, out = Path(src), clone(src, out)
    for rel, fn in ((UNET, unet_fn), (TEXT, text_fn)):
        if fn is None:
            continue
        args = (read(src / rel),) + ((read(Path(partner) / rel),) if partner is not None else ())
        try:
            tensors = fn(*args)
        except ValueError as e:  # one line naming the partner's file
            raise InputError(str(e), Path(partner or src) / rel, "weights") from None
        (out / rel).unlink()  # a copied file, never a link into the world
        write(tensors, out / rel)
    return out
