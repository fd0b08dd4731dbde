"""Tiny but real diffusers StableDiffusionPipeline components, built offline from configs.

The shapes follow diffusers' own test pipelines, scaled to what trains on two CPU cores:
16x16 RGB images, a VAE with one downsampling (8x8x4 latents), a ~1M-parameter UNet and a
2-layer CLIP text encoder over the character tokenizer.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from attribcheck.config import JsonConfig


@dataclass
class TinyConfig(JsonConfig):
    image_size: int = 16
    latent_channels: int = 4
    vae_channels: tuple = (32, 64)
    unet_channels: tuple = (32, 48)
    unet_layers_per_block: int = 1
    text_hidden: int = 32
    text_layers: int = 2
    max_length: int = 96
    beta_schedule: str = "squaredcos_cap_v2"
    seed: int = 0


def build_vae(cfg: TinyConfig):
    from diffusers import AutoencoderKL

    n = len(cfg.vae_channels)
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=cfg.latent_channels,
        down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(cfg.vae_channels), layers_per_block=1, norm_num_groups=16,
        sample_size=cfg.image_size,
    )


def build_unet(cfg: TinyConfig):
    from diffusers import UNet2DConditionModel

    latent = cfg.image_size // 2 ** (len(cfg.vae_channels) - 1)
    return UNet2DConditionModel(
        sample_size=latent, in_channels=cfg.latent_channels, out_channels=cfg.latent_channels,
        layers_per_block=cfg.unet_layers_per_block, block_out_channels=tuple(cfg.unet_channels),
        # Cross-attention at full latent resolution only: that is where a caption picks its image;
        # dropping it from the coarse block halves the parameters (the 40 MB fixture budget).
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=cfg.text_hidden, attention_head_dim=8, norm_num_groups=16,
    )


def build_text_encoder(cfg: TinyConfig, vocab_size: int):
    from transformers import CLIPTextConfig, CLIPTextModel

    tc = CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=cfg.text_hidden, intermediate_size=cfg.text_hidden * 2,
        num_hidden_layers=cfg.text_layers, num_attention_heads=4,
        max_position_embeddings=cfg.max_length, bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1,
    )
    return CLIPTextModel(tc)


def build_schedulers(cfg: TinyConfig):
    """(training scheduler, sampling scheduler) sharing one noise schedule."""
    from diffusers import DDIMScheduler, DDPMScheduler

    common = dict(num_train_timesteps=1000, beta_schedule=cfg.beta_schedule, clip_sample=False,
                  prediction_type="epsilon")
    return DDPMScheduler(**common), DDIMScheduler(**common, set_alpha_to_one=False, steps_offset=1)


def build_pipeline(cfg: TinyConfig, tokenizer_dir: str, vae=None, max_params: int | None = None):
    """A fresh StableDiffusionPipeline; pass a trained VAE to share it."""
    import torch
    from diffusers import StableDiffusionPipeline

    from attribcheck.models import budget
    from attribcheck.lab.tokenizer import char_tokenizer

    tokenizer = char_tokenizer(tokenizer_dir, cfg.max_length)
    # counted on the meta device first: a config file's widths could ask for many GB
    budget.check_built({"vae_channels": lambda: build_vae(cfg), "unet_channels": lambda: build_unet(cfg),
                        "text_hidden": lambda: build_text_encoder(cfg, len(tokenizer))}, "TinyConfig", max_params,
                       config=asdict(cfg))
    torch.manual_seed(cfg.seed)
    text_encoder = build_text_encoder(cfg, len(tokenizer))
    unet = build_unet(cfg)
    _, sampler = build_schedulers(cfg)
    return StableDiffusionPipeline(
        vae=vae if vae is not None else build_vae(cfg), text_encoder=text_encoder,
        tokenizer=tokenizer, unet=unet, scheduler=sampler, safety_checker=None,
        feature_extractor=None, requires_safety_checker=False,
    )
