"""Real-size pipelines and bench (attribcheck/lab/realsize, attribcheck/lab/bench/realsize.py),
exercised at tiny shapes through the same code: CI never builds an SD-1.5-sized pipeline."""
from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path

import numpy as np

from attribcheck.lab.realsize.build import PRESETS, _text_encoder, _text_encoder_2, _unet, _vae, build, folder_for

# Stable Diffusion 1.5's published parameter counts (UNet, VAE, CLIP ViT-L/14 text encoder)
SD15_PARAMS = {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480}
# SDXL-base's (its UNet, the same VAE shapes, CLIP ViT-L/14 and OpenCLIP bigG with projection)
SDXL_PARAMS = {"unet": 2_567_463_684, "vae": 83_653_863, "text_encoder": 123_060_480, "text_encoder_2": 694_659_840}


def test_sd15_preset_has_sd15s_parameter_counts(tmp_path):
    """The real shapes, counted on the meta device (nothing allocated, nothing built)."""
    import torch

    from attribcheck.lab.tokenizer import char_tokenizer

    tok = char_tokenizer(tmp_path / "tok")
    cfg = PRESETS["sd15"]
    with torch.device("meta"):
        counts = {name: sum(p.numel() for p in make(cfg).parameters())
                  for name, make in (("unet", _unet), ("vae", _vae), ("text_encoder", lambda c: _text_encoder(c, tok)))}
    assert counts == SD15_PARAMS


def test_sdxl_preset_has_sdxls_parameter_counts(tmp_path):
    import torch

    from attribcheck.lab.tokenizer import char_tokenizer

    tok = char_tokenizer(tmp_path / "tok")
    cfg = PRESETS["sdxl"]
    with torch.device("meta"):
        counts = {name: sum(p.numel() for p in make(cfg).parameters())
                  for name, make in (("unet", _unet), ("vae", _vae), ("text_encoder", lambda c: _text_encoder(c, tok)),
                                     ("text_encoder_2", lambda c: _text_encoder_2(c, tok)))}
    assert counts == SDXL_PARAMS


def test_an_sdxl_shaped_pipeline_loads_and_answers_through_the_audits_generator(tmp_path):
    from attribcheck.models.diffusers_generator import DiffusersGenerator
    from attribcheck.models.protocol import QueryProtocol

    folder = build("tiny-xl", 0, tmp_path)
    assert json.loads((folder / "model_index.json").read_text())["_class_name"] == "StableDiffusionXLPipeline"
    gen = DiffusersGenerator.from_path(folder, QueryProtocol(steps=2, height=32, width=32))
    assert type(gen.pipeline).__name__ == "StableDiffusionXLPipeline"
    a, b = gen.generate(["a red bicycle", "a red bicycle"], [0, 0])
    assert a.shape == (32, 32, 3) and np.array_equal(a, b) and np.isfinite(a).all()


def test_tiny_build_is_seeded_resumable_and_loads_with_sdpa(tmp_path):
    from attribcheck.fingerprint import fingerprint
    from attribcheck.models.diffusers_generator import load_pipeline

    a = build("tiny", 0, tmp_path)
    assert a == folder_for(tmp_path, "tiny", 0) and (a / ".done").exists()
    assert json.loads((a / "model_index.json").read_text())["_class_name"] == "StableDiffusionPipeline"
    unet = json.loads((a / "unet/config.json").read_text())
    assert unet["down_block_types"] == ["CrossAttnDownBlock2D", "DownBlock2D"]
    stamp = (a / "unet/diffusion_pytorch_model.safetensors").stat().st_mtime_ns
    assert build("tiny", 0, tmp_path) == a  # done: found, not rebuilt
    assert (a / "unet/diffusion_pytorch_model.safetensors").stat().st_mtime_ns == stamp
    b = build("tiny", 1, tmp_path)
    again = build("tiny", 0, tmp_path / "again")
    assert fingerprint(a) == fingerprint(again) != fingerprint(b)
    pipe = load_pipeline(a)
    kinds = {type(p).__name__ for p in pipe.unet.attn_processors.values()}
    assert kinds == {"AttnProcessor2_0"}  # PyTorch's scaled_dot_product_attention


def test_a_killed_build_starts_again(tmp_path):
    out = folder_for(tmp_path, "tiny", 0)
    (out / "unet").mkdir(parents=True)
    (out / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"half a file")
    build("tiny", 0, tmp_path)
    assert (out / ".done").exists()
    assert (out / "unet" / "diffusion_pytorch_model.safetensors").stat().st_size > 100


def _args(tmp_path, **kw):
    base = dict(preset="tiny", cache_dir=str(tmp_path / "pipes"), keys=2, seeds=2, steps=2, size=32, threads=1,
                batch=None, dtype="float32", device="cpu", full=False, skip=None, no_pixels=True,
                json=str(tmp_path / "out.json"))
    return Namespace(**{**base, **kw})


def test_bench_runs_every_variant_and_they_agree(tmp_path):
    from attribcheck.lab.bench.realsize import VARIANTS, child, run

    run(_args(tmp_path), spawn=child)  # in this process: seconds, not a torch import per variant
    f = json.loads((tmp_path / "out.json").read_text())
    assert set(VARIANTS) <= set(f)
    assert f["same_distances"] and f["same_verdicts"] and f["loop_agrees"]
    assert f["audit-cold"]["cache_entries"] == 2 * 2 * 2  # source and suspect, 2 keys x 2 seeds
    assert f["cache_bytes_per_answer"] > 0  # compressed (lossless: tests/test_cache.py)
    assert f["audit-warm"]["seconds"] < f["audit-cold"]["seconds"]
    assert f["ratio_audit_to_loop"] > 0 and f["peak_rss_max_bytes"] > 0
    assert f["keys"]["attention_processors"] == ["AttnProcessor2_0"]


def test_a_variant_runs_in_a_child_process(tmp_path):
    """What the bench does for its peak-memory figures: one process per variant."""
    from attribcheck.lab.bench.realsize import Plan, _spawn

    src = build("tiny", 0, tmp_path)
    plan = Plan(str(src), str(src), str(tmp_path), keys=1, size=32, captions=["a cat"])
    out = _spawn("keys", plan)
    assert out["images"] == 1 and out["peak_rss_bytes"] > 50 * 2 ** 20
    assert np.load(tmp_path / "keys.npz")["images"].shape == (1, 32, 32, 3)


def test_pixel_timings_write_an_evidence_page():
    from attribcheck.lab.bench.realsize import pixel_timings

    row = pixel_timings(sizes=(96,), k=2, repeat=1)["96"]
    assert row["evidence_page_bytes"] > 1000
    assert all(row[k] >= 0 for k in ("conformance_s", "rms_s", "evidence_page_s"))


def test_device_script_exists_and_is_bash():
    text = Path(__file__).parents[1].joinpath("scripts/device_realsize.sh").read_text()
    assert text.startswith("#!/usr/bin/env bash") and "attribcheck.bench realsize" in text


# --- what real size needs of the generator (attribcheck/models/diffusers_generator.py) ---

def _generator(tmp_path, batch: int):
    from attribcheck.models.diffusers_generator import DiffusersGenerator, load_pipeline
    from attribcheck.models.protocol import QueryProtocol, Runtime

    pipe = load_pipeline(build("tiny", 0, tmp_path))
    return DiffusersGenerator(pipe, QueryProtocol(steps=2, height=32, width=32), runtime=Runtime(batch_size=batch,
                                                                                                   threads=1))


def test_the_vae_decodes_one_image_at_a_time(tmp_path):
    """At 512² the VAE's decoder is what peaks; sliced, a batch peaks like one image."""
    assert _generator(tmp_path, 4).pipeline.vae.use_slicing


def test_a_batch_larger_than_free_memory_holds_is_split_and_gives_the_same_images(tmp_path, monkeypatch):
    from attribcheck.models import diffusers_generator as dg

    gen = _generator(tmp_path, 4)
    prompts, seeds = ["a cat", "a dog", "a cow"], [0, 1, 2]
    whole = gen.generate(prompts, seeds)
    calls = []
    cls = type(gen.pipeline)
    real = cls.__call__
    monkeypatch.setattr(cls, "__call__", lambda self, p, **kw: calls.append(len(p)) or real(self, p, **kw))
    one_image = (dg.DECODE_BYTES_512 + 1.5 * dg.BYTES_PER_IMAGE_512) * 32 * 32 / 512 ** 2
    monkeypatch.setattr(dg, "free_memory", lambda device: int(one_image / dg.FREE_SHARE))
    split = gen.generate(prompts, seeds)
    assert calls == [1, 1, 1]
    assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(whole, split))


def test_the_batch_scales_with_pixels_and_dtype(monkeypatch):
    from attribcheck.models import diffusers_generator as dg

    room = dg.DECODE_BYTES_512 + 10.5 * dg.BYTES_PER_IMAGE_512  # the decoder once, ten and a half images
    monkeypatch.setattr(dg, "free_memory", lambda device: int(room / dg.FREE_SHARE))
    assert dg.fitting_batch(64, 512, 512, "float32", "cpu") == 10
    assert dg.fitting_batch(3, 512, 512, "float32", "cpu") == 3  # never more than asked
    # 1024² in float16: four times the pixels at half the width, twice the memory per image and decoder
    monkeypatch.setattr(dg, "free_memory", lambda device: int(2 * room / dg.FREE_SHARE))
    assert dg.fitting_batch(64, 1024, 1024, "float16", "cuda") == 10
    monkeypatch.setattr(dg, "free_memory", lambda device: 0)
    assert dg.fitting_batch(64, 512, 512, "float32", "cpu") == 1  # at least one: let the allocator say no


def test_parameters_sum_a_components_shards(tmp_path):
    # SDXL's UNet is saved in two shards; counting only the last one said 70.5 M for 2.57 G
    import torch
    from safetensors.torch import save_file

    from attribcheck.lab.realsize.build import parameters

    (tmp_path / "unet").mkdir()
    save_file({"a": torch.zeros(3, 4)}, str(tmp_path / "unet" / "diffusion_pytorch_model-00001-of-00002.safetensors"))
    save_file({"b": torch.zeros(5)}, str(tmp_path / "unet" / "diffusion_pytorch_model-00002-of-00002.safetensors"))
    assert parameters(tmp_path) == {"unet": 17}
