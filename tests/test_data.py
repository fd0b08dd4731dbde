"""Datasets: folders with manifests, and the two built-in real datasets."""
import numpy as np
import pytest

from attribcheck.data import CaptionDataset, Sample
from attribcheck.lab.datasets import load_builtin
from attribcheck.lab.datasets.digits import WORDS


@pytest.fixture(scope="module")
def digits():
    return load_builtin("digits")


@pytest.fixture(scope="module")
def emoji():
    return load_builtin("emoji")


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_folder_round_trip(tmp_path, digits, emoji, fmt):
    ds = digits[:5].concat(emoji[:5])
    ds.samples[0] = Sample(ds[0].id, 'a caption, with "quotes", commas', ds[0].image)
    ds.save(tmp_path, fmt=fmt)
    back = CaptionDataset.from_folder(tmp_path)
    assert back.ids == ds.ids and back.captions == ds.captions
    np.testing.assert_allclose(back.images, np.round(ds.images * 255) / 255, atol=1e-6)  # 8-bit PNG
    assert CaptionDataset.from_folder(tmp_path, side=8).images.shape == (10, 8, 8, 3)
    # saving the other format over it leaves one manifest, so the new one is what loads
    ds[:3].save(tmp_path, fmt="csv" if fmt == "jsonl" else "jsonl")
    assert CaptionDataset.from_folder(tmp_path).ids == ds.ids[:3]


def test_manifest_id_defaults_to_file_stem(tmp_path, digits):
    digits[:2].save(tmp_path)
    (tmp_path / "manifest.csv").write_text(f"file,caption\n{digits[1].id}.png,hello\n")
    (tmp_path / "manifest.jsonl").unlink()
    back = CaptionDataset.from_folder(tmp_path)
    assert back.ids == [digits[1].id] and back.captions == ["hello"]


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest"):
        CaptionDataset.from_folder(tmp_path)
    (tmp_path / "manifest.jsonl").write_text('{"file": "a.png"}\n')
    with pytest.raises(ValueError, match="caption"):
        CaptionDataset.from_folder(tmp_path)
    (tmp_path / "manifest.jsonl").write_text('{"file": "a.png", "caption": "x"}\n')
    with pytest.raises(FileNotFoundError, match="a.png"):
        CaptionDataset.from_folder(tmp_path)
    (tmp_path / "manifest.jsonl").unlink()
    (tmp_path / "manifest.csv").write_text("path,caption\na.png,x\n")
    with pytest.raises(ValueError, match="file"):
        CaptionDataset.from_folder(tmp_path)


def test_images_must_share_a_shape():
    ds = CaptionDataset([Sample("a", "x", np.zeros((4, 4, 3), np.float32)),
                         Sample("b", "y", np.zeros((5, 5, 3), np.float32))])
    with pytest.raises(ValueError, match="shape"):
        ds.images
    with pytest.raises(ValueError, match="unique"):
        ds.concat(ds).save("unused")


def test_sequence_access(digits):
    assert isinstance(digits[3], Sample) and digits[3].id == "digits-0003"
    part = digits[10:20]
    assert isinstance(part, CaptionDataset) and len(part) == 10 and part.ids == digits.ids[10:20]
    assert [s.id for s in part] == part.ids
    assert digits.subset([5, 2]).ids == ["digits-0005", "digits-0002"]
    assert digits.by_id("digits-0042") is digits[42]
    with pytest.raises(KeyError):
        digits.by_id("nope")


def test_digits_captions_are_measured_attributes(digits):
    assert len(digits) == 1797 and digits.images.shape == (1797, 16, 16, 3)
    assert load_builtin("digits", side=8).images.shape == (1797, 8, 8, 3)
    from sklearn.datasets import load_digits

    raw = load_digits()
    for s, t in zip(digits, raw.target):
        assert f"handwritten {WORDS[t]}," in s.caption, s.caption
    text = " ".join(digits.captions)
    for attr in ("thin", "regular", "thick", "left-leaning", "upright", "right-leaning", "narrow", "wide",
                 "left of centre", "centred", "right of centre"):
        assert text.count(attr) > 500, attr  # buckets are quantiles: each is well populated

    # the words follow the pixels: within a class, "thick" digits carry more ink than "thin" ones
    ink = raw.images.sum(axis=(1, 2))
    for t in range(10):
        cls = raw.target == t
        thick = cls & np.array(["a thick," in c for c in digits.captions])
        thin = cls & np.array(["a thin," in c for c in digits.captions])
        assert ink[thick].min() > ink[thin].max(), WORDS[t]
    # and the rendering is dark ink on white, in colour
    imgs = digits.images
    assert imgs[:, 0, 0].min() > 0.99 and imgs.min() < 0.3
    assert (imgs[..., 2] - imgs[..., 0]).max() > 0.2


def test_emoji_are_coloured_and_named(emoji):
    assert len(emoji) >= 500 and emoji.images.shape[1:] == (16, 16, 3)
    imgs = emoji.images
    chroma = (imgs.max(axis=-1) - imgs.min(axis=-1)).mean(axis=(1, 2))
    assert np.mean(chroma > 0.02) > 0.9  # rendered in colour, not as grey fallback glyphs
    assert all(c == c.lower() and c.strip() for c in emoji.captions)
    assert len(set(emoji.captions)) == len(emoji)
    codepoints = [int(i.removeprefix("emoji-"), 16) for i in emoji.ids]
    assert codepoints == sorted(set(codepoints))
    face = emoji.by_id("emoji-1f600")
    assert face.caption == "grinning face"
    r, g, b = face.image[6:10, 6:10].reshape(-1, 3).mean(axis=0)
    assert r > 0.7 and g > 0.6 and b < 0.5  # yellow
    # cropped to the ink: the glyph reaches the left edge (wide ones) or the top edge (tall ones)
    ink = (imgs < 0.9).any(axis=-1)
    assert np.mean(ink[:, :, 0].any(axis=1) | ink[:, 0, :].any(axis=1)) > 0.9
    assert load_builtin("emoji", limit=7).ids == emoji.ids[:7]


def test_split_is_disjoint_and_seeded(digits):
    a, b = digits.split([100, 50], seed=3)
    assert not set(a.ids) & set(b.ids) and len(a) == 100 and len(b) == 50
    assert digits.split([100, 50], seed=3)[0].ids == a.ids != digits.split([100, 50], seed=4)[0].ids
    assert a.ids != digits.ids[:100]  # shuffled, not a prefix
    with pytest.raises(ValueError):
        digits.split([2000], seed=0)
    with pytest.raises(ValueError):
        digits.split([1000, 1000], seed=0)


def test_unknown_builtin():
    with pytest.raises(ValueError, match="digits"):
        load_builtin("cifar")
