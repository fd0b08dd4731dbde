"""Text-to-image fine-tuning of a diffusers pipeline's UNet (the source owner's tool for
reference and shadow models, and this project's tool for building its world)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from attribcheck.config import JsonConfig


@dataclass
class FinetuneConfig(JsonConfig):
    steps: int = 3000
    batch_size: int = 16
    learning_rate: float = 1e-3
    # Constant after warm-up: with cosine decay the tiny UNet stops short of memorizing.
    lr_schedule: str = "constant"  # or "cosine" (after a linear warm-up)
    warmup_steps: int = 100
    weight_decay: float = 0.0
    caption_dropout: float = 0.0  # share of captions replaced by "" (classifier-free guidance)
    # Train the text encoder with the UNet (full fine-tunes, DreamBooth-style): a tiny model
    # whose frozen encoder gives near-identical embeddings to similar captions learns to
    # follow them only this way.
    train_text_encoder: bool = False
    # Offset noise (diffusers' --noise_offset): a per-(sample, channel) constant added to the
    # noise. An 8x8 latent's noise carries channel means of +-0.12 that plain training teaches
    # the UNet to keep, so a seed fixes an image's overall colour and a memorized image comes
    # back only from seeds whose means happen to fit; with offset noise the UNet learns to
    # remove them and the caption decides.
    noise_offset: float = 0.0
    resolution: int = 16
    seed: int = 0
    save_dtype: str = "float16"  # the UNet's dtype on disk; fixtures stay small


def _learning_rate(cfg: FinetuneConfig, step: int) -> float:
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.learning_rate
    if cfg.lr_schedule == "cosine":
        frac = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return cfg.learning_rate * 0.5 * (1 + math.cos(math.pi * frac))
    raise ValueError(f"unknown lr_schedule {cfg.lr_schedule!r}")


def encode_images(vae, images: np.ndarray, batch: int = 256):
    """Images (N,H,W,3 in [0,1]) -> scaled latents. The posterior mean, not a sample:
    a fixed target per image is what lets a small model memorize through a VAE."""
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = torch.from_numpy(images[i:i + batch]).permute(0, 3, 1, 2).float() * 2 - 1
            out.append(vae.encode(x.to(vae.dtype)).latent_dist.mean.float())
    return torch.cat(out) * vae.config.scaling_factor


def encode_captions(tokenizer, text_encoder, captions: list[str], batch: int = 256):
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(captions), batch):
            ids = tokenizer(captions[i:i + batch], padding="max_length", truncation=True,
                            max_length=tokenizer.model_max_length, return_tensors="pt").input_ids
            out.append(text_encoder(ids)[0].float())
    return torch.cat(out)


def train_unet(unet, noise_scheduler, latents, embeds, null_embed, cfg: FinetuneConfig,
               progress: bool = False, text_encoder=None, token_ids=None, callback=None,
               callback_every: int = 0):
    """The denoising objective on precomputed latents and caption embeddings.

    With `text_encoder` and `token_ids`, the text encoder trains too and embeddings are
    recomputed each step (pre-training only: fine-tunes keep it frozen, as SD fine-tunes do).
    `callback(steps_done)` runs every `callback_every` steps (studies measure a run as it
    goes); it must leave the models as it found them, and it draws nothing from the training
    generator, so with a constant learning rate the model after n steps is the one a run of
    n steps would give.
    """
    import torch

    gen = torch.Generator().manual_seed(cfg.seed)
    unet.train()
    unet.float()
    params = list(unet.parameters())
    if text_encoder is not None:
        text_encoder.train()
        params += list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    alphas = noise_scheduler.alphas_cumprod.float()
    n = len(latents)
    steps = range(cfg.steps)
    if progress:
        from rich.progress import track
        steps = track(steps, description="fine-tuning", transient=True)
    for step in steps:
        idx = torch.randint(0, n, (cfg.batch_size,), generator=gen)
        x0 = latents[idx]
        cond = text_encoder(token_ids[idx])[0] if text_encoder is not None else embeds[idx]
        if cfg.caption_dropout > 0:
            drop = torch.rand(cfg.batch_size, generator=gen) < cfg.caption_dropout
            cond = torch.where(drop[:, None, None], null_embed.expand_as(cond), cond)
        noise = torch.randn(x0.shape, generator=gen)
        if cfg.noise_offset > 0:  # drawn only when used: older recipes train bit-identically
            noise = noise + cfg.noise_offset * torch.randn((*x0.shape[:2], 1, 1), generator=gen)
        t = torch.randint(0, len(alphas), (cfg.batch_size,), generator=gen)
        a = alphas[t].view(-1, 1, 1, 1)
        noisy = a.sqrt() * x0 + (1 - a).sqrt() * noise
        pred = unet(noisy, t, cond).sample
        loss = torch.nn.functional.mse_loss(pred, noise)
        for group in opt.param_groups:
            group["lr"] = _learning_rate(cfg, step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if callback is not None and callback_every and (step + 1) % callback_every == 0:
            unet.eval()
            callback(step + 1)
            unet.train()
    unet.eval()
    if text_encoder is not None:
        text_encoder.eval()
    return unet


def finetune(base: str | Path, dataset, cfg: FinetuneConfig, out_dir: str | Path,
             progress: bool = False, callback=None, callback_every: int = 0) -> Path:
    """Fine-tune the UNet of the pipeline at `base` on a CaptionDataset; save a pipeline folder.
    `callback(steps_done, pipeline)` as in `train_unet`."""
    import torch
    from diffusers import DDPMScheduler, StableDiffusionPipeline

    torch.manual_seed(cfg.seed)
    pipe = StableDiffusionPipeline.from_pretrained(str(base), torch_dtype=torch.float32,
                                                   safety_checker=None, requires_safety_checker=False)
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    images = np.stack([s.image for s in dataset]).astype(np.float32)
    latents = encode_images(pipe.vae, images)
    embeds = encode_captions(pipe.tokenizer, pipe.text_encoder, [s.caption for s in dataset])
    null_embed = encode_captions(pipe.tokenizer, pipe.text_encoder, [""])
    hook = (lambda n: callback(n, pipe)) if callback is not None else None
    extra = {}
    if cfg.train_text_encoder:
        extra = {"text_encoder": pipe.text_encoder,
                 "token_ids": pipe.tokenizer([s.caption for s in dataset], padding="max_length", truncation=True,
                                             max_length=pipe.tokenizer.model_max_length, return_tensors="pt").input_ids}
    train_unet(pipe.unet, noise_scheduler, latents, embeds, null_embed, cfg, progress,
               callback=hook, callback_every=callback_every, **extra)
    pipe.unet.to(getattr(torch, cfg.save_dtype))
    out_dir = Path(out_dir)
    pipe.save_pretrained(str(out_dir), safe_serialization=True)
    cfg.save(out_dir / "finetune_config.json")
    return out_dir
