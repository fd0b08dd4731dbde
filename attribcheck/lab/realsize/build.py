"""Build a StableDiffusionPipeline folder with Stable Diffusion 1.5's architecture (or a
StableDiffusionXLPipeline with SDXL-base's), randomly initialised from a seed, without a
model hub.

Random weights memorize nothing: these pipelines are for time, memory and code paths (what an
audit costs at 512²), never for verdicts. They go into the cache folder, never into git:
`<cache>/realsize/<preset>-s<seed>/`, with a `.done` marker, so a build that was killed starts
again and a finished one is not rebuilt.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from attribcheck.config import JsonConfig
from attribcheck.lab.world.layout import is_done, mark_done

SUBDIR = "realsize"


@dataclass
class RealSizeConfig(JsonConfig):
    """SD-1.5's shapes (the defaults); `PRESETS["tiny"]` shrinks them for tests."""

    image_size: int = 512
    latent_channels: int = 4
    vae_channels: tuple = (128, 256, 512, 512)
    vae_layers_per_block: int = 2
    unet_channels: tuple = (320, 640, 1280, 1280)
    unet_layers_per_block: int = 2
    attention_head_dim: int = 8
    text_hidden: int = 768
    text_layers: int = 12
    text_heads: int = 12
    text_intermediate: int = 3072
    # CLIP's vocabulary size: the embedding table is as large as SD-1.5's (memory, load time)
    # although the project's character tokenizer uses only its first rows
    text_vocab: int = 49408
    max_length: int = 77
    norm_groups: int = 32
    seed: int = 0
    # SDXL: a second text encoder (OpenCLIP bigG's shapes, with a projection), cross-attention
    # on both encoders' hidden states side by side, the pooled text and six size/crop
    # conditions embedded beside the time step, transformer depth per UNet level
    xl: bool = False
    transformer_layers: tuple = (1, 2, 10)
    xl_head_dims: tuple = (5, 10, 20)
    text2_hidden: int = 1280
    text2_layers: int = 32
    text2_heads: int = 20
    text2_intermediate: int = 5120
    time_embed_dim: int = 256


PRESETS = {
    "sd15": RealSizeConfig(),
    # the same code path in seconds: what tests build
    "tiny": RealSizeConfig(image_size=32, vae_channels=(8, 16), vae_layers_per_block=1, unet_channels=(16, 32),
                           unet_layers_per_block=1, attention_head_dim=4, text_hidden=16, text_layers=2,
                           text_heads=2, text_intermediate=32, text_vocab=0, norm_groups=4),
    # SDXL-base: UNet (320, 640, 1280) with 1/2/10 transformer layers, 2.6 G parameters, 1024²
    "sdxl": RealSizeConfig(image_size=1024, unet_channels=(320, 640, 1280), xl=True),
    "tiny-xl": RealSizeConfig(image_size=32, vae_channels=(8, 16), vae_layers_per_block=1, unet_channels=(16, 32),
                              unet_layers_per_block=1, text_hidden=16, text_layers=2, text_heads=2,
                              text_intermediate=32, text_vocab=0, norm_groups=4, xl=True, transformer_layers=(1, 2),
                              xl_head_dims=(2, 4), text2_hidden=16, text2_layers=2, text2_heads=2,
                              text2_intermediate=32, time_embed_dim=8),
}


def _vae(cfg: RealSizeConfig):
    from diffusers import AutoencoderKL

    n = len(cfg.vae_channels)
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=cfg.latent_channels,
                         down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
                         block_out_channels=tuple(cfg.vae_channels), layers_per_block=cfg.vae_layers_per_block,
                         norm_num_groups=cfg.norm_groups, sample_size=cfg.image_size,
                         scaling_factor=0.13025 if cfg.xl else 0.18215, force_upcast=cfg.xl)


def _unet(cfg: RealSizeConfig):
    from diffusers import UNet2DConditionModel

    if cfg.xl:
        return _unet_xl(cfg)
    n = len(cfg.unet_channels)  # SD-1.5: cross-attention in every block but the coarsest
    return UNet2DConditionModel(
        sample_size=cfg.image_size // 2 ** (len(cfg.vae_channels) - 1), in_channels=cfg.latent_channels,
        out_channels=cfg.latent_channels, layers_per_block=cfg.unet_layers_per_block,
        block_out_channels=tuple(cfg.unet_channels),
        down_block_types=("CrossAttnDownBlock2D",) * (n - 1) + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (n - 1),
        cross_attention_dim=cfg.text_hidden, attention_head_dim=cfg.attention_head_dim,
        norm_num_groups=cfg.norm_groups)


def _unet_xl(cfg: RealSizeConfig):
    from diffusers import UNet2DConditionModel

    n = len(cfg.unet_channels)  # SDXL: no attention at the finest level
    return UNet2DConditionModel(
        sample_size=cfg.image_size // 2 ** (len(cfg.vae_channels) - 1), in_channels=cfg.latent_channels,
        out_channels=cfg.latent_channels, layers_per_block=cfg.unet_layers_per_block,
        block_out_channels=tuple(cfg.unet_channels),
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",),
        transformer_layers_per_block=tuple(cfg.transformer_layers), attention_head_dim=tuple(cfg.xl_head_dims),
        cross_attention_dim=cfg.text_hidden + cfg.text2_hidden, use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=cfg.time_embed_dim,
        projection_class_embeddings_input_dim=cfg.text2_hidden + 6 * cfg.time_embed_dim,
        norm_num_groups=cfg.norm_groups)


def _text_encoder_2(cfg: RealSizeConfig, tokenizer):
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    eos = tokenizer.eos_token_id
    return CLIPTextModelWithProjection(CLIPTextConfig(
        vocab_size=max(cfg.text_vocab, len(tokenizer)), hidden_size=cfg.text2_hidden,
        intermediate_size=cfg.text2_intermediate, num_hidden_layers=cfg.text2_layers,
        num_attention_heads=cfg.text2_heads, max_position_embeddings=cfg.max_length, hidden_act="gelu",
        projection_dim=cfg.text2_hidden, bos_token_id=tokenizer.bos_token_id, eos_token_id=eos, pad_token_id=eos))


def _text_encoder(cfg: RealSizeConfig, tokenizer):
    from transformers import CLIPTextConfig, CLIPTextModel

    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    return CLIPTextModel(CLIPTextConfig(
        vocab_size=max(cfg.text_vocab, len(tokenizer)), hidden_size=cfg.text_hidden,
        intermediate_size=cfg.text_intermediate, num_hidden_layers=cfg.text_layers,
        num_attention_heads=cfg.text_heads, max_position_embeddings=cfg.max_length, hidden_act="quick_gelu",
        bos_token_id=bos, eos_token_id=eos, pad_token_id=eos))


def build_pipeline(cfg: RealSizeConfig, tokenizer_dir: str | Path):
    """A fresh StableDiffusionPipeline (StableDiffusionXLPipeline with `cfg.xl`), every
    component seeded from cfg.seed."""
    import torch
    from diffusers import DDIMScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline

    from attribcheck.lab.tokenizer import char_tokenizer

    tokenizer = char_tokenizer(tokenizer_dir, cfg.max_length)
    makers = [("vae", _vae), ("unet", _unet), ("text_encoder", lambda c: _text_encoder(c, tokenizer))]
    if cfg.xl:
        makers.append(("text_encoder_2", lambda c: _text_encoder_2(c, tokenizer)))
    parts = {}
    for i, (name, make) in enumerate(makers):
        torch.manual_seed(cfg.seed * 1000 + i)  # one seed per component: building one never shifts another
        parts[name] = make(cfg)
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                              beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
                              steps_offset=1, prediction_type="epsilon")  # SD-1.5's and SDXL's schedule
    if cfg.xl:  # one tokenizer for both encoders: the project's character tokenizer
        return StableDiffusionXLPipeline(**parts, tokenizer=tokenizer, tokenizer_2=tokenizer, scheduler=scheduler,
                                         force_zeros_for_empty_prompt=True)
    return StableDiffusionPipeline(**parts, tokenizer=tokenizer, scheduler=scheduler, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)


def folder_for(root: str | Path, preset: str, seed: int) -> Path:
    return Path(root) / SUBDIR / f"{preset}-s{seed}"


def build(preset: str = "sd15", seed: int = 0, root: str | Path | None = None,
          cfg: RealSizeConfig | None = None) -> Path:
    """The pipeline folder for (preset, seed) under the cache root, built unless already done."""
    from attribcheck.cache import default_root

    if cfg is None:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
        cfg = PRESETS[preset]
    cfg = replace(cfg, seed=seed)
    out = folder_for(root or default_root(), preset, seed)
    if is_done(out):
        return out
    pipe = build_pipeline(cfg, out / "tokenizer")
    pipe.save_pretrained(str(out), safe_serialization=True)
    cfg.save(out / "realsize_config.json")
    mark_done(out)
    return out


def parameters(folder: str | Path) -> dict[str, int]:
    """Parameters per component of a built folder, read from its safetensors headers."""
    from safetensors import safe_open

    counts = {}
    for f in sorted(Path(folder).glob("*/*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            # a large component is saved in shards (SDXL's UNet: 2): sum them
            counts[f.parent.name] = counts.get(f.parent.name, 0) + sum(_prod(st.get_slice(k).get_shape())
                                                                         for k in st.keys())
    return counts


def _prod(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def main(args) -> int:
    """`attribcheck realsize build`: print each pipeline's folder and parameter counts."""
    for seed in args.seed or [0]:
        out = build(args.preset, seed, args.cache_dir)
        counts = parameters(out)
        print(out, " ".join(f"{k} {v / 1e6:.1f}M" for k, v in counts.items()), flush=True)
    return 0
