"""Baseline 1's watermark: round trip on real images, blind decoding, the owner's secret."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attribcheck.lab.datasets import load_builtin
from attribcheck.lab.watermark.dct import DctWatermark, WatermarkConfig


@pytest.fixture(scope="module", params=["emoji", "digits"])
def pictures(request) -> np.ndarray:
    data = load_builtin(request.param, side=16)
    return np.stack([data[i].image for i in range(0, len(data), max(1, len(data) // 60))])[:60]


def test_round_trip_on_clean_images(pictures):
    mark = DctWatermark()
    stamped = mark.embed_many(pictures)
    assert stamped.dtype == np.float32 and stamped.min() >= 0 and stamped.max() <= 1
    assert np.allclose(stamped * 255, np.round(stamped * 255), atol=1e-4)  # 8-bit, as it is handed out
    assert mark.bit_accuracy(stamped).min() >= 31  # the bar: >= 31 of 32 bits
    assert mark.carries_mark(stamped).all()


def test_unmarked_images_do_not_carry_the_mark(pictures):
    # blind decoding of clean images gives chance-level bits: far below the 24-bit bar
    bits = DctWatermark().bit_accuracy(pictures)
    assert bits.mean() < 20 and np.mean(bits >= 24) <= 0.02


def test_another_owners_key_does_not_read_the_mark(pictures):
    ours, theirs = DctWatermark(WatermarkConfig(seed=1)), DctWatermark(WatermarkConfig(seed=2))
    assert not np.array_equal(ours.message, theirs.message)
    assert np.mean(theirs.carries_mark(ours.embed_many(pictures))) <= 0.02


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.0, 1.0))
def test_round_trip_on_smooth_random_images(seed, level):
    # a smooth random picture around some grey level (clipping at 0 or 1 included)
    rng = np.random.default_rng(seed)
    coarse = np.clip(level + rng.normal(0, 0.3, (4, 4, 3)), 0, 1)
    image = np.kron(coarse, np.ones((4, 4, 1))).astype(np.float32)
    mark = DctWatermark()
    assert mark.bit_accuracy(mark.embed(image)) >= 31


def test_carriers_are_orthonormal_and_config_round_trips():
    mark = DctWatermark()
    gram = mark.carriers @ mark.carriers.T
    assert np.allclose(gram, np.eye(mark.cfg.bits))
    assert WatermarkConfig.from_json(mark.cfg.to_json()) == mark.cfg
    with pytest.raises(ValueError):
        DctWatermark(WatermarkConfig(band=(1, 1), bits=32))
