"""Generators: loading from local files, per-(prompt, seed) determinism, folder suspects."""
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attribcheck.errors import InputError
from attribcheck.models.diffusers_generator import DiffusersGenerator, load_pipeline
from attribcheck.models.folder_generator import FolderGenerator, collect
from attribcheck.models.generator import generate_grid
from attribcheck.models.protocol import QueryProtocol, Runtime

PROMPTS = ["grinning face", "a thick seven", "red heart", "cyclone", "bomb"]


@pytest.fixture(scope="module")
def tiny_generator(tmp_path_factory):
    from attribcheck.lab.tiny import TinyConfig, build_pipeline

    folder = tmp_path_factory.mktemp("pipe")
    build_pipeline(TinyConfig(), str(folder / "_tok")).save_pretrained(str(folder / "p"), safe_serialization=True)
    return DiffusersGenerator.from_path(folder / "p", QueryProtocol(steps=4), runtime=Runtime(batch_size=3))


@settings(max_examples=8)
@given(others=st.lists(st.tuples(st.sampled_from(PROMPTS), st.integers(0, 50)), min_size=1, max_size=5),
       pos=st.integers(0, 5), seed=st.integers(0, 1000))
def test_image_does_not_depend_on_its_batch(tiny_generator, others, pos, seed):
    alone = tiny_generator.generate(["grinning face"], [seed])[0]
    pos = min(pos, len(others))
    pairs = others[:pos] + [("grinning face", seed)] + others[pos:]
    batch = tiny_generator.generate([p for p, _ in pairs], [s for _, s in pairs])
    np.testing.assert_allclose(batch[pos], alone, atol=1e-5)


def test_seeds_matter_and_output_is_an_image(tiny_generator):
    a, b = tiny_generator.generate(["cyclone", "cyclone"], [0, 1])
    assert a.shape == (16, 16, 3) and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1
    assert np.abs(a - b).max() > 1e-3


def test_folder_generator_replays_collected_images(tiny_generator, tmp_path):
    folder = collect(tiny_generator, PROMPTS[:2], [3, 4], tmp_path / "api")
    replay = FolderGenerator(folder)
    grid = generate_grid(replay, PROMPTS[:1], [3])
    direct = tiny_generator.generate(PROMPTS[:1], [3])[0]
    assert np.abs(grid[0, 0] - direct).max() <= 1 / 255 + 1e-6  # PNG quantisation only
    with pytest.raises(InputError, match="never collected"):
        replay.generate(["bomb"], [0])


def test_single_file_unet_over_a_local_base(tiny_generator, tmp_path):
    """A fine-tune shared as one .safetensors (diffusers layout) loads over its base folder."""
    import torch
    from safetensors.torch import save_file

    base = tmp_path / "base"
    tiny_generator.pipeline.save_pretrained(str(base), safe_serialization=True)
    protocol = tiny_generator.protocol
    tuned = DiffusersGenerator.from_path(base, protocol)
    with torch.no_grad():
        for p in tuned.pipeline.unet.parameters():
            p.add_(0.01 * torch.randn_like(p))  # a "fine-tuned" UNet that differs from the base's
    state = {k: v.contiguous() for k, v in tuned.pipeline.unet.state_dict().items()}
    save_file(state, str(tmp_path / "ft.safetensors"))
    single = DiffusersGenerator.from_path(tmp_path / "ft.safetensors", protocol, config=base)
    a = single.generate(["red heart"], [1])[0]
    np.testing.assert_allclose(a, tuned.generate(["red heart"], [1])[0], atol=1e-5)
    assert np.abs(a - tiny_generator.generate(["red heart"], [1])[0]).max() > 1e-4
    with pytest.raises(InputError, match="config"):
        load_pipeline(tmp_path / "ft.safetensors")


def test_loading_refuses_what_it_should(tmp_path):
    from attribcheck.errors import InputError, IntegrityError

    with pytest.raises(InputError, match="model_index.json"):
        load_pipeline(tmp_path)
    (tmp_path / "m.ckpt").write_bytes(b"not safetensors")
    with pytest.raises(InputError, match="safetensors"):
        load_pipeline(tmp_path / "m.ckpt")
    # a model_index.json may only name diffusers pipelines and diffusers/transformers parts
    index = {"_class_name": "StableDiffusionPipeline", "unet": ["my_module", "EvilUNet"]}
    (tmp_path / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(IntegrityError, match="model_index.json: unet: .*diffusers or transformers"):
        load_pipeline(tmp_path)
    (tmp_path / "model_index.json").write_text(json.dumps({**index, "_class_name": "os.system", "unet": None}))
    with pytest.raises(IntegrityError, match="_class_name"):
        load_pipeline(tmp_path)
