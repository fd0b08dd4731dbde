"""Datasets: folders with manifests, and the two built-in real datasets."""
import numpy as np
import pytest

from attribcheck.data import CaptionDataset, load_builtin


@pytest.fixture(scope="module")
def digits():
    return load_builtin("digits")


@pytest.fixture(scope="module")
def emoji():
    return load_builtin("emoji")


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_folder_round_trip(tmp_path, digits, emoji, fmt):
    ds = digits[:5].concat(emoji[:5])
    ds.samples[0] = type(ds[0])(ds[0].id, 'a caption, with "quotes", commas', ds[0].image)
    ds.save(tmp_path, fmt=fmt)
    back = CaptionDataset.from_folder(tmp_path)
    assert back.ids == ds.ids and back.captions == ds.captions
    np.testing.assert_allclose(back.images, np.round(ds.images * 255) / 255, atol=1e-6)  # 8-bit PNG
    assert CaptionDataset.from_folder(tmp_path, side=8).images.shape == (10, 8, 8, 3)


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest"):
        CaptionDataset.from_folder(tmp_path)
    (tmp_path / "manifest.jsonl").write_text('{"file": "a.png"}\n')
    with pytest.raises(ValueError, match="caption"):
        CaptionDataset.from_folder(tmp_path)
    (tmp_path / "manifest.jsonl").write_text('{"file": "a.png", "caption": "x"}\n')
    with pytest.raises(FileNotFoundError, match="a.png"):
        CaptionDataset.from_folder(tmp_path)


def test_digits_captions_are_measured_attributes(digits):
    assert len(digits) == 1797 and digits.images.shape == (1797, 16, 16, 3)
    from sklearn.datasets import load_digits

    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    for s, t in zip(digits, load_digits().target):
        assert f"handwritten {words[t]}," in s.caption
    text = " ".join(digits.captions)
    for attr in ("thin", "regular", "thick", "left-leaning", "upright", "right-leaning", "narrow", "wide",
                 "short", "tall", "left of centre", "centred", "right of centre"):
        assert text.count(attr) > 200, attr  # buckets are quantiles: each is well populated


def test_emoji_are_coloured_and_named(emoji):
    assert len(emoji) >= 500
    imgs = emoji.images
    chroma = (imgs.max(axis=-1) - imgs.min(axis=-1)).mean(axis=(1, 2))
    assert np.mean(chroma > 0.02) > 0.9  # rendered in colour, not as grey fallback glyphs
    assert all(c == c.lower() and c.strip() for c in emoji.captions)
    assert len(set(emoji.captions)) == len(emoji)


def test_split_is_disjoint_and_seeded(digits):
    a, b = digits.split([100, 50], seed=3)
    assert not set(a.ids) & set(b.ids) and len(a) == 100 and len(b) == 50
    assert digits.split([100, 50], seed=3)[0].ids == a.ids != digits.split([100, 50], seed=4)[0].ids
    with pytest.raises(ValueError):
        digits.split([2000], seed=0)


def test_unknown_builtin():
    with pytest.raises(ValueError, match="digits"):
        load_builtin("cifar")
