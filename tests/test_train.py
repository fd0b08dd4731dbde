"""The fine-tuning loop, the VAE trainer, the rho mixer and a micro world build."""
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from attribcheck.lab.datasets import load_builtin
from attribcheck.data.dataset import CaptionDataset, Sample
from attribcheck.lab.train.mix import generated_dataset, mix


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


def test_weighted_mix_draws_popular_prompts_more_often_each_generation_once():
    grid = np.ones((20, 4, 4, 4, 3), np.float32)
    gens = generated_dataset([f"prompt {i}" for i in range(20)], grid)
    weights = [50.0 if s.caption == "prompt 0" else 1.0 for s in gens]  # prompt 0: common
    out = mix(_real(60), gens, 30, 0.5, 3, weights=weights)
    generated = [s for s in out if s.id.startswith("gen-")]
    assert len(generated) == 15 and len({s.id for s in generated}) == 15  # no generation twice
    assert sum(s.caption == "prompt 0" for s in generated) == 4  # all of its seeds
    assert mix(_real(60), gens, 30, 0.5, 3, weights=weights).ids == out.ids
    with pytest.raises(ValueError, match="one positive weight"):
        mix(_real(60), gens, 30, 0.5, 3, weights=[1.0] * 5)


MICRO = dict(datasets=["digits"], pretrain_size=16, source_size=8, domain_extra=4, real_pool=24,
             vae_steps=3, base_steps=3, source_steps=3, twin_steps=3, suspect_steps=3,
             suspect_size=8, rhos=[1.0], suspect_seeds=[0], innocent_seeds=[0], k=5,
             query_seeds=[0], sampler_steps=2, generation_seeds=1)


@pytest.fixture(scope="module")
def micro_world(tmp_path_factory):
    """The whole recipe at toy size (3 training steps per model)."""
    from attribcheck.lab.world.build import WorldBuilder
    from attribcheck.lab.world.config import WorldConfig

    builder = WorldBuilder(tmp_path_factory.mktemp("micro") / "w", WorldConfig(**MICRO))
    builder.build()
    return builder


def test_micro_world_builds_and_resumes(micro_world):
    """Every model is a loadable pipeline folder, keys exist, and a second build does no
    work (resumable)."""
    from attribcheck.keys.keyset import KeySet
    from attribcheck.models.diffusers_generator import DiffusersGenerator
    from attribcheck.lab.world.build import WorldBuilder
    from attribcheck.lab.world.config import WorldConfig

    builder, cfg = micro_world, micro_world.cfg
    root = builder.layout.root
    layout = builder.layout
    for name in ("base", "source", "infringer-rho1.0-s0", "innocent-s0", "innocent-overlap-s0", "ref-twin"):
        folder = layout.model("digits", name)
        assert (folder / ".done").exists() and (folder / "vae").is_symlink()
        assert DiffusersGenerator.from_path(folder).generate(["a thin handwritten one"], [0])[0].shape == (16, 16, 3)
    train_ids = json.loads((layout.model("digits", "innocent-overlap-s0") / "train_set.json").read_text())["ids"]
    source_ids = json.loads((layout.model("digits", "source") / "train_set.json").read_text())["ids"]
    assert set(train_ids) & set(source_ids)  # the overlap innocent shares real data with D_S
    ks = KeySet.load(layout.keys("digits", "random"))
    assert len(ks) == 5 and set(ks.reference_roles.values()) == {"selection", "calibration"}
    for strategy in ("detection", "generation", "random"):  # every selection leaves its record
        record = json.loads((layout.keys("digits", strategy) / "selection.json").read_text())
        assert record["counts"]["candidates"] > 0 and record["thresholds"]["mode"] == cfg.thresholds
    stamp = (layout.model("digits", "source") / "unet" / "diffusion_pytorch_model.safetensors").stat().st_mtime
    WorldBuilder(root, cfg).build()
    assert (layout.model("digits", "source") / "unet" / "diffusion_pytorch_model.safetensors").stat().st_mtime == stamp
    with pytest.raises(ValueError, match="another recipe"):
        WorldBuilder(root, WorldConfig(datasets=["digits"])).build()


def test_micro_world_with_domain_prompts_and_guidance_builds_in_two_workers(tmp_path):
    """The partial world's recipe switches (prompts as often as the domain writes them, the
    text encoder trained, caption dropout with guidance) at toy size, suspects two at once."""
    from attribcheck.lab.world.build import WorldBuilder
    from attribcheck.lab.world.config import WorldConfig

    cfg = WorldConfig(**{**MICRO, "infringer_prompts": "domain", "guidance_scale": 2.0, "caption_dropout": 0.1,
                         "train_text_encoder": True, "noise_offset": 0.1,
                         "source_duplicate_share": 0.25, "source_duplicate_copies": [3, 3],
                         "near_duplicate_jitter": 0.02, "key_filters": {s: ["base"] for s in ("detection", "generation", "random")}})
    builder = WorldBuilder(tmp_path / "w", cfg, workers=2)
    builder.build()
    layout = builder.layout
    for name in ("source", "infringer-rho1.0-s0", "innocent-s0", "ref-calibration"):
        folder = layout.model("digits", name)
        assert (folder / ".done").exists() and not (folder / "text_encoder").is_symlink()  # its own
        ft = json.loads((folder / "finetune_config.json").read_text())
        assert ft["caption_dropout"] == 0.1 and ft["train_text_encoder"] is True and ft["noise_offset"] == 0.1
    assert not layout.model("digits", "ref-twin").exists()  # no key filter uses a twin: none trained
    assert builder.protocol().guidance_scale == 2.0
    _, splits = builder.data("digits")
    gens, weights = builder.generated_pool(splits, builder._grid)
    assert len(weights) == len(gens) and max(weights) > 1  # a duplicated caption weighs more
    planned = {n: t.ids for n, t, _ in builder.suspect_plan(splits)}
    trained = json.loads((layout.model("digits", "infringer-rho1.0-s0") / "train_set.json").read_text())["ids"]
    assert trained == planned["infringer-rho1.0-s0"]


def test_bench_instance_keeps_its_json_contract_and_reruns_from_the_cache(micro_world, tmp_path, caplog):
    """`python -m attribcheck.bench instance`: {"datasets": {NAME: {"conf": {strategy: {rho: mean}},
    "innocents": {...}}}}; a second run answers every query from the generation cache."""
    from attribcheck.lab.bench.__main__ import main

    out, cache = tmp_path / "inst.json", tmp_path / "cache"
    args = ["instance", "--world", str(micro_world.layout.root), "--json", str(out), "--cache-dir", str(cache)]
    assert main(args) == 0
    first = json.loads(out.read_text())
    r = first["datasets"]["digits"]
    assert set(r["conf"]) == {"detection", "generation", "random"}
    assert all(set(row) == {"1.0"} and all(0 <= v <= 1 for v in row.values()) for row in r["conf"].values())
    assert set(r["innocents"]) == {"innocent-s0", "innocent-overlap-s0"}
    entries = sorted(p.name for p in cache.rglob("*.npy"))
    assert entries and main(args) == 0
    assert sorted(p.name for p in cache.rglob("*.npy")) == entries  # nothing new computed
    assert json.loads(out.read_text())["datasets"] == first["datasets"]
    # --shadows: the finished innocent shadows join the calibration references under p0
    from attribcheck.lab.shadows.build import ShadowBuilder
    from attribcheck.lab.shadows.config import ShadowConfig

    ShadowBuilder(micro_world.layout.root, tmp_path / "shadows", ShadowConfig(per_class=1, overlap_innocents=0)).build()
    with caplog.at_level("WARNING", logger="attribcheck"):
        assert main(args + ["--shadows", "--shadow-cache", str(tmp_path / "shadows")]) == 0
    p0 = json.loads(out.read_text())["datasets"]["digits"]["p0"]
    # the micro shadow barely moves from the base: where the base is a selection reference of the
    # key set, its distances are the stored ones and it is left out of p0 (it carries the bias)
    joined = {s: v["innocent_models"] - first["datasets"]["digits"]["p0"][s]["innocent_models"] for s, v in p0.items()}
    left_out = "left out of p0" in caplog.text
    assert all(n == 1 or (n == 0 and left_out) for n in joined.values()), (joined, caplog.text[-500:])


def test_micro_shadows_build_resume_and_fit(micro_world, tmp_path):
    """Shadows and watermark infringers land in the cache; a build killed half-way resumes
    with only the unfinished model; the fitted discriminator is saved beside its key set."""
    from attribcheck.cli import main
    from attribcheck.keys.keyset import KeySet
    from attribcheck.lab.shadows.build import ShadowBuilder
    from attribcheck.lab.shadows.config import ShadowConfig
    from attribcheck.statistical.fit import FILENAME, StatisticalAuditor

    cfg = ShadowConfig(per_class=2, overlap_innocents=0, steps=3)
    builder = ShadowBuilder(micro_world.layout.root, tmp_path / "cache", cfg)
    builder.build(watermark=True)
    folders = [f for f, _ in builder.shadows("digits")] + [builder.watermark_infringer("digits", 1.0)]
    assert all((f / ".done").exists() for f in folders) and [lab for _, lab in builder.shadows("digits")] == [1, 0, 1, 0]
    assert str(builder.root).startswith(str(tmp_path / "cache"))
    # "kill" the build during the last shadow: only that one trains again
    weights = lambda f: (f / "unet" / "diffusion_pytorch_model.safetensors").stat().st_mtime_ns  # noqa: E731
    before = {f: weights(f) for f in folders}
    (folders[3] / ".done").unlink()
    ShadowBuilder(micro_world.layout.root, tmp_path / "cache", cfg).build(watermark=True)
    assert [weights(f) != before[f] for f in folders] == [False, False, False, True, False]
    # another training recipe never reuses these shadows; more shadows of this one do
    assert ShadowBuilder(micro_world.layout.root, tmp_path / "cache", ShadowConfig(per_class=2, steps=4)).root != builder.root
    more = ShadowBuilder(micro_world.layout.root, tmp_path / "cache", ShadowConfig(per_class=3, overlap_innocents=1, steps=3))
    assert more.root == builder.root
    more.build(workers=2)  # the new shadows train in two worker processes
    assert [lab for _, lab in more.shadows("digits")] == [1, 0, 1, 0, 1, 0, 0]  # classes alternate
    assert all((f / ".done").exists() for f, _ in more.shadows("digits"))
    overlap = json.loads((more.folder("digits", "shadow-innocent-overlap-0") / "train_set.json").read_text())["ids"]
    d_s = json.loads((micro_world.layout.model("digits", "source") / "train_set.json").read_text())["ids"]
    assert set(overlap) & set(d_s) and not any(i.startswith("gen") for i in overlap)
    assert all(weights(f) == before[f] for f in folders[:3])  # the first shadows were kept
    # past one machine: the same jobs on a Dask cluster's executor (here an in-process one)
    from distributed import Client, LocalCluster

    most = ShadowBuilder(micro_world.layout.root, tmp_path / "cache", ShadowConfig(per_class=4, overlap_innocents=1, steps=3))
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        most.build(executor=client.get_executor())
    assert all((f / ".done").exists() for f, _ in most.shadows("digits")) and len(most.shadows("digits")) == 9
    keys = tmp_path / "keys"
    KeySet.load(micro_world.layout.keys("digits", "random")).save(keys)
    args = ["shadows", "fit", "--keys", str(keys)]
    for f, lab in builder.shadows("digits"):
        args += ["--infringing" if lab else "--innocent", str(f)]
    assert main(args) == 0
    aud = StatisticalAuditor.for_keyset(keys, KeySet.load(keys))
    assert (keys / FILENAME).exists() and len(aud.discriminator.y_fit_) == 4


def test_vae_scaling_gives_unit_latents():
    import torch

    from attribcheck.lab.tiny import TinyConfig, build_vae
    from attribcheck.lab.train.finetune import encode_images
    from attribcheck.lab.train.vae import train_vae

    torch.manual_seed(0)
    imgs = load_builtin("digits").images[:64]
    vae, rms = train_vae(build_vae(TinyConfig()), imgs, steps=5, batch_size=16)
    assert 0 < rms < 1
    assert float(encode_images(vae, imgs).std()) == pytest.approx(1.0, abs=1e-3)
