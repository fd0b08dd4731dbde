"""Evasion transformations and the crop-aligned metric (no model needed)."""
import numpy as np
import pytest

from attribcheck.lab.bench.robust import TRANSFORMS, summarise
from attribcheck.metrics.distance import get_distance


def emoji_like(seed: int) -> np.ndarray:
    """A coloured disc on white, like the world's emoji."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:16, :16]
    disc = (yy - 8 + rng.integers(-2, 3)) ** 2 + (xx - 8 + rng.integers(-2, 3)) ** 2 < rng.integers(16, 36)
    img = np.ones((16, 16, 3), np.float32)
    img[disc] = rng.uniform(0, 1, 3)
    return img


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_transforms_keep_a_valid_image_no_smaller_than_the_key(name):
    x = emoji_like(0)
    y = TRANSFORMS[name](x)
    assert y.shape[0] >= 16 and y.shape[1] >= 16 and y.shape[2] == 3 and np.all((0 <= y) & (y <= 1))


def test_aligned_metric_recovers_a_crop_and_does_not_match_other_pictures():
    rms, aligned = get_distance("rms"), get_distance("aligned_rms")
    key = emoji_like(1)
    cropped = TRANSFORMS["crop10"](key)
    assert aligned(cropped, key) < 0.5 * rms(cropped, key)
    assert aligned(key, key) == 0.0
    for seed in range(2, 8):  # other pictures stay far apart: alignment cannot invent a match
        other = emoji_like(seed)
        assert aligned(other, key) > 0.5 * rms(other, key) > 0


def test_aligned_metric_never_exceeds_rms():
    rms, aligned = get_distance("rms"), get_distance("aligned_rms")
    for seed in range(5):
        x, y = emoji_like(seed), emoji_like(seed + 10)
        assert aligned(x, y) <= rms(x, y) + 1e-12


def test_bad_zooms_refused():
    with pytest.raises(ValueError, match="zooms"):
        get_distance({"name": "aligned_rms", "zooms": [0.1]})


def test_summary_counts_flips_and_innocent_attributions():
    rows = [
        {"suspect": "inf", "expect": "infringing", "change": "none", "metric": "rms", "conf": 0.6, "verdict": "attributed"},
        {"suspect": "inf", "expect": "infringing", "change": "crop10", "metric": "rms", "conf": 0.1, "verdict": "clean"},
        {"suspect": "inn", "expect": "innocent", "change": "none", "metric": "rms", "conf": 0.0, "verdict": "clean"},
        {"suspect": "inn", "expect": "innocent", "change": "crop10", "metric": "rms", "conf": 0.5, "verdict": "attributed"},
    ]
    s = summarise(rows)
    assert s["crop10/rms"] == {"conf_loss": pytest.approx(0.5), "flips_to_clean": 1, "innocents_attributed": 1}
    assert s["none/rms"]["conf_loss"] == 0.0
