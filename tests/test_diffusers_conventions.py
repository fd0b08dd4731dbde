"""Diffusers suspects the way users have them: a `variant` (fp16) folder, a repo id in the local
Hugging Face cache (offline), a LoRA adapter over a base, a non-text-to-image pipeline folder
(AutoPipelineForText2Image), and a clear error for a LoRA file named as a model. Each on a
tiny model the test builds from the shipped world's base."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from attribcheck.errors import InputError
from attribcheck.manifest import Manifest
from attribcheck.models.spec import SuspectSpec, open_generator
from attribcheck.models.protocol import QueryProtocol, Runtime

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "fixtures" / "world" / "emoji" / "models" / "base"
PROTOCOL = QueryProtocol(steps=3)
RUNTIME = Runtime(threads=1)
PROMPTS, SEEDS = ["grinning face", "red heart"], [0, 1]


def images(spec: SuspectSpec) -> list[np.ndarray]:
    return open_generator(spec, PROTOCOL, RUNTIME).generate(PROMPTS, SEEDS)


@pytest.fixture(scope="module")
def base_pipe():
    from attribcheck.models.diffusers_generator import load_pipeline

    return load_pipeline(BASE)


@pytest.fixture(scope="module")
def reference(base_pipe):
    spec = SuspectSpec("base", BASE, "innocent")
    return images(spec)


def same(a, b, tol=1e-6) -> bool:
    return all(np.abs(x - y).max() <= tol for x, y in zip(a, b))


def test_variant_folder(base_pipe, reference, tmp_path):
    folder = tmp_path / "fp16-variant"
    base_pipe.save_pretrained(folder, variant="fp16", safe_serialization=True)
    assert list(folder.glob("unet/*.fp16.safetensors"))
    got = images(SuspectSpec("v", folder, "innocent", variant="fp16"))
    assert same(got, reference)  # the same weights under another file name
    with pytest.raises(InputError, match=r"variant: no \*\.bf16\.safetensors"):
        images(SuspectSpec("v", folder, "innocent", variant="bf16"))


def hf_cache(root: Path, repo: str, folder: Path) -> str:
    """`folder` laid out as the Hugging Face hub cache holds a downloaded repo."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = root / f"models--{repo.replace('/', '--')}"
    shutil.copytree(folder, repo_dir / "snapshots" / commit)
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    return commit


def test_repo_id_from_the_local_hugging_face_cache_offline(base_pipe, reference, tmp_path, monkeypatch):
    from huggingface_hub import constants

    saved = tmp_path / "saved"
    base_pipe.save_pretrained(saved, safe_serialization=True)
    hub = tmp_path / "hub"
    hf_cache(hub, "tiny-org/emoji-base", saved)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    (tmp_path / "m.toml").write_text(f"""[audit]
source = '{BASE.as_posix()}'
keys = '{(ROOT / "fixtures/world/emoji/keys/generation").as_posix()}'
[[suspects]]
name = "from-the-hub-cache"
repo = "tiny-org/emoji-base"
expect = "innocent"
[[suspects]]
name = "never-downloaded"
repo = "tiny-org/other"
expect = "innocent"
""")
    m = Manifest.load(tmp_path / "m.toml")
    found, missing = m.suspects
    assert found.path is None and found.repo == "tiny-org/emoji-base"
    assert same(images(found), reference)
    with pytest.raises(InputError, match="not in the local Hugging Face cache") as e:
        images(missing)
    assert "never-downloaded: repo" in str(e.value)
    # the cache identity is the snapshot's content: same files, same identity as the folder
    from attribcheck.models.builtin_kinds import diffusers_identity

    assert diffusers_identity(found) == diffusers_identity(SuspectSpec("x", saved, "innocent"))


def test_manifest_names_either_path_or_repo(tmp_path):
    keys = (ROOT / "fixtures/world/emoji/keys/generation").as_posix()
    for body, needle in (("path = 'x'\nrepo = 'a/b'", "either path"), ("", "either path"),
                         ("repo = 'a/b'\nkind = 'folder'", "repo is a diffusers setting"),
                         ("repo = '../../etc'", "repo")):
        (tmp_path / "m.toml").write_text(f"[audit]\nsource = '{BASE.as_posix()}'\nkeys = '{keys}'\n"
                                         f"[[suspects]]\nname = 's'\nexpect = 'innocent'\n{body}\n")
        with pytest.raises(InputError, match=needle):
            Manifest.load(tmp_path / "m.toml")


@pytest.fixture(scope="module")
def lora_file(tmp_path_factory, base_pipe):
    """A LoRA adapter for the base UNet (random, non-zero up-projections: it changes the images)."""
    pytest.importorskip("peft", reason="peft is not installed (pip install 'attribcheck[lora]')")
    import torch
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from attribcheck.models.diffusers_generator import load_pipeline

    torch.manual_seed(0)
    unet = load_pipeline(BASE).unet
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian",
                                target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    folder = tmp_path_factory.mktemp("lora")
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=convert_state_dict_to_diffusers(
        get_peft_model_state_dict(unet)), safe_serialization=True)
    return folder / "pytorch_lora_weights.safetensors"


def test_lora_over_a_base(reference, lora_file):
    with_lora = images(SuspectSpec("l", BASE, "innocent", lora=lora_file, lora_scale=1.0))
    assert not same(with_lora, reference, tol=1e-3)  # the adapter changes the images
    at_zero = images(SuspectSpec("l0", BASE, "innocent", lora=lora_file, lora_scale=0.0))
    assert same(at_zero, reference, tol=1e-4)  # scale 0: the base
    from attribcheck.models.builtin_kinds import diffusers_identity

    ids = {diffusers_identity(SuspectSpec("x", BASE, "innocent", lora=lora_file, lora_scale=s))["lora_scale"]
           for s in (0.5, 1.0)}
    assert ids == {0.5, 1.0}


def test_a_lora_file_named_as_a_model_is_a_clear_error(lora_file):
    with pytest.raises(InputError, match="is a LoRA adapter, not a model") as e:
        images(SuspectSpec("wrong", lora_file, "innocent", config=BASE))
    assert "as lora" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(InputError, match="holds LoRA adapter weights"):
        images(SuspectSpec("wrong", lora_file.parent, "innocent"))


def test_lora_without_peft_says_so(monkeypatch, tmp_path):
    import builtins

    real = builtins.__import__

    def no_peft(name, *a, **k):
        if name == "peft" or name.startswith("peft."):
            raise ImportError("no peft")
        return real(name, *a, **k)

    from attribcheck.models.diffusers_generator import add_lora

    f = tmp_path / "a.safetensors"
    f.write_bytes(b"")
    monkeypatch.setattr(builtins, "__import__", no_peft)
    with pytest.raises(InputError, match=r"needs peft: pip install 'attribcheck\[lora\]'"):
        add_lora(object(), f)


def test_other_pipeline_classes_load_as_text_to_image(base_pipe, reference, tmp_path):
    """An img2img pipeline folder is loaded through AutoPipelineForText2Image as its
    text-to-image twin (the same components)."""
    from diffusers import StableDiffusionImg2ImgPipeline

    folder = tmp_path / "img2img"
    StableDiffusionImg2ImgPipeline(**base_pipe.components).save_pretrained(folder, safe_serialization=True)
    import json

    assert json.loads((folder / "model_index.json").read_text())["_class_name"] == "StableDiffusionImg2ImgPipeline"
    gen = open_generator(SuspectSpec("i2i", folder, "innocent"), PROTOCOL, RUNTIME)
    assert type(gen.pipeline).__name__ == "StableDiffusionPipeline"
    assert same(gen.generate(PROMPTS, SEEDS), reference)
