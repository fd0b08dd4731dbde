"""The fine-tuning loop, the VAE trainer, the rho mixer and a micro world build."""
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from attribcheck.data import load_builtin
from attribcheck.data.dataset import CaptionDataset, Sample
from attribcheck.train.mix import generated_dataset, mix


def _real(n):
    return CaptionDataset([Sample(f"r{i}", f"real {i}", np.zeros((4, 4, 3), np.float32)) for i in range(n)])


@given(rho=st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0]), n=st.integers(1, 40), seed=st.integers(0, 99))
def test_mix_has_the_generation_rate_and_distinct_prompts(rho, n, seed):
    grid = np.ones((50, 2, 4, 4, 3), np.float32)
    gens = generated_dataset([f"prompt {i}" for i in range(50)], grid)
    out = mix(_real(60), gens, n, rho, seed)
    generated = [s for s in out if s.id.startswith("gen-")]
    assert len(out) == n and len(generated) == round(rho * n)
    assert len({s.caption for s in generated}) == len(generated)
    assert mix(_real(60), gens, n, rho, seed).ids == out.ids  # seeded


def test_mix_refuses_impossible_requests():
    gens = generated_dataset(["a", "b"], np.ones((2, 1, 4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="distinct generated prompts"):
        mix(_real(10), gens, 10, 0.5, 0)


def test_micro_world_builds_and_resumes(tmp_path):
    """The whole recipe at toy size: every model is a loadable pipeline folder, keys exist,
    and a second build does no work (resumable)."""
    from attribcheck.keys.keyset import KeySet
    from attribcheck.models.diffusers_generator import DiffusersGenerator
    from attribcheck.world.build import WorldBuilder
    from attribcheck.world.config import WorldConfig

    cfg = WorldConfig(datasets=["digits"], pretrain_size=16, source_size=8, domain_extra=4, real_pool=24,
                      vae_steps=3, base_steps=3, source_steps=3, twin_steps=3, suspect_steps=3,
                      suspect_size=8, rhos=[1.0], suspect_seeds=[0], innocent_seeds=[0], k=4,
                      query_seeds=[0], sampler_steps=2, generation_seeds=1)
    builder = WorldBuilder(tmp_path / "w", cfg)
    builder.build()
    layout = builder.layout
    for name in ("base", "source", "infringer-rho1.0-s0", "innocent-s0", "innocent-overlap-s0", "ref-twin"):
        folder = layout.model("digits", name)
        assert (folder / ".done").exists() and (folder / "vae").is_symlink()
        assert DiffusersGenerator.from_path(folder).generate(["a thin handwritten one"], [0])[0].shape == (16, 16, 3)
    train_ids = json.loads((layout.model("digits", "innocent-overlap-s0") / "train_set.json").read_text())["ids"]
    source_ids = json.loads((layout.model("digits", "source") / "train_set.json").read_text())["ids"]
    assert set(train_ids) & set(source_ids)  # the overlap innocent shares real data with D_S
    ks = KeySet.load(layout.keys("digits", "random"))
    assert len(ks) == 4 and set(ks.reference_roles.values()) == {"selection", "calibration"}
    stamp = (layout.model("digits", "source") / "unet" / "diffusion_pytorch_model.safetensors").stat().st_mtime
    WorldBuilder(tmp_path / "w", cfg).build()
    assert (layout.model("digits", "source") / "unet" / "diffusion_pytorch_model.safetensors").stat().st_mtime == stamp
    with pytest.raises(ValueError, match="another recipe"):
        WorldBuilder(tmp_path / "w", WorldConfig(datasets=["digits"])).build()


def test_vae_scaling_gives_unit_latents():
    import torch

    from attribcheck.models.tiny import TinyConfig, build_vae
    from attribcheck.train.finetune import encode_images
    from attribcheck.train.vae import train_vae

    torch.manual_seed(0)
    imgs = load_builtin("digits").images[:64]
    vae, rms = train_vae(build_vae(TinyConfig()), imgs, steps=5, batch_size=16)
    assert 0 < rms < 1
    assert float(encode_images(vae, imgs).std()) == pytest.approx(1.0, abs=1e-3)
