"""Model transformations that train: washing (further fine-tuning on real pairs of the domain,
saved at several step counts from one run), a LoRA fine-tune of the base, and a student
distilled from a model's generations. Each writes a pipeline folder; the caller marks it done."""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

from attribcheck.lab.evade.weights import clone


def save_checkpoint(pipe, src: Path, out: Path) -> None:
    """`pipe`'s UNet (fp16, as the world stores it) and text encoder into a copy of `src`,
    leaving the training models untouched (a training callback calls this)."""
    import torch

    clone(src, out)
    unet = copy.deepcopy(pipe.unet).to(torch.float16)
    unet.save_pretrained(str(out / "unet"), safe_serialization=True)
    pipe.text_encoder.save_pretrained(str(out / "text_encoder"), safe_serialization=True)


def wash(src: Path, data, cfg, outs: dict[int, Path], done) -> None:
    """Fine-tune `src` further on `data` (a CaptionDataset) with FinetuneConfig `cfg`, saving the
    model after each step count in `outs` (with a constant learning rate the model after n steps
    is the one an n-step run gives: train_unet's callback). `done(path)` marks each one."""
    from attribcheck.lab.train.finetune import finetune

    def save(n, pipe):
        if n in outs:
            save_checkpoint(pipe, src, outs[n])
            done(outs[n])

    cfg.steps = max(outs)
    tmp = Path(str(outs[max(outs)]) + ".final")
    finetune(src, data, cfg, tmp, callback=save, callback_every=min(outs))
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)  # the last checkpoint already holds it


# LoRA adapters on the UNet's attention, feed-forward and resnet convolutions and on the text
# encoder's attention: the layers diffusers' LoRA scripts and kohya's adapt
UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
                "conv1", "conv2"]
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]
# every linear and convolution layer of the UNet (LyCORIS' LoCon, kohya's conv_dim): beside the
# above, the input and output convolutions, the resnets' shortcuts and time projections, the
# time embedding and the down/upsamplers. At rank 8 the first set left the models short of
# following their captions; the output convolution (32 -> 4 channels) is unadapted there.
UNET_ALL = UNET_TARGETS + ["conv_in", "conv_out", "conv_shortcut", "time_emb_proj", "linear_1", "linear_2", "conv"]


def lora(base: Path, data, cfg, outs: dict[int, Path], rank: int = 8, text_mlp: bool = False, done=None,
         unet_targets=UNET_TARGETS) -> None:
    """A LoRA fine-tune of `base` on `data`: only the adapters train (UNet and text encoder).
    After each step count in `outs` (one run, as `wash`: with a constant learning rate the model
    after n steps is the one an n-step run gives) the adapters are merged into a copy of the
    weights for serving (what diffusers' `load_lora_weights` at scale 1 computes) and saved
    there; `done(path)` marks each one."""
    import numpy as np
    import torch
    from diffusers import DDPMScheduler, StableDiffusionPipeline
    from peft import LoraConfig, get_peft_model

    from attribcheck.lab.train.finetune import encode_captions, encode_images, train_unet

    torch.manual_seed(cfg.seed)
    pipe = StableDiffusionPipeline.from_pretrained(str(base), torch_dtype=torch.float32, safety_checker=None,
                                                   requires_safety_checker=False)
    unet = get_peft_model(pipe.unet, LoraConfig(r=rank, lora_alpha=rank, target_modules=unet_targets,
                                                init_lora_weights="gaussian"))
    # with text_mlp, the text encoder's MLPs too (how far captions are told apart lies there as much)
    targets = TEXT_TARGETS + (["fc1", "fc2"] if text_mlp else [])
    text = get_peft_model(pipe.text_encoder, LoraConfig(r=rank, lora_alpha=rank, target_modules=targets,
                                                        init_lora_weights="gaussian"))
    images = np.stack([s.image for s in data]).astype(np.float32)
    latents = encode_images(pipe.vae, images)
    null = encode_captions(pipe.tokenizer, pipe.text_encoder, [""])
    ids = pipe.tokenizer([s.caption for s in data], padding="max_length", truncation=True,
                         max_length=pipe.tokenizer.model_max_length, return_tensors="pt").input_ids

    def save(n):
        if n not in outs:
            return
        trained = pipe.unet, pipe.text_encoder
        # merged copies: the adapters keep training after this checkpoint
        pipe.unet = copy.deepcopy(unet).merge_and_unload().to(torch.float16)
        pipe.text_encoder = copy.deepcopy(text).merge_and_unload()
        pipe.save_pretrained(str(outs[n]), safe_serialization=True)
        dataclasses.replace(cfg, steps=n).save(outs[n] / "finetune_config.json")
        pipe.unet, pipe.text_encoder = trained
        if done is not None:
            done(outs[n])

    cfg.steps = max(outs)
    train_unet(unet, DDPMScheduler.from_config(pipe.scheduler.config), latents, None, null, cfg,
               text_encoder=text, token_ids=ids, callback=save, callback_every=min(outs))


def teacher_generations(teacher: Path, prompts: list[str], seeds: list[int], protocol):
    """What a distiller collects: the teacher's images for the domain's prompts, (P, S, H, W, 3)."""
    from attribcheck.models.generator import generate_grid
    from attribcheck.models.spec import SuspectSpec, open_generator

    return generate_grid(open_generator(SuspectSpec("teacher", teacher, "innocent"), protocol), prompts, seeds)
