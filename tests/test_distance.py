"""Distance axioms (property tests) and declared metadata."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from attribcheck.errors import InputError
from attribcheck.metrics.distance import (AlignedRMSDistance, MultiscaleRMSDistance, RMSDistance, TiledRMSDistance,
                                          get_distance, rms_distance, tiled_rms_distance)

side = 8
image = arrays(np.float32, (side, side, 3), elements=st.floats(0, 1, width=32))
METRICS = [RMSDistance(), TiledRMSDistance(tiles=2), TiledRMSDistance(tiles=4)]


@pytest.mark.parametrize("metric", METRICS, ids=lambda m: f"{m.name}")
@given(x=image, y=image, z=image)
def test_metric_axioms(metric, x, y, z):
    dxy, dyx = metric(x, y), metric(y, x)
    assert metric(x, x) == 0.0
    assert dxy == pytest.approx(dyx)
    assert metric.lower <= dxy <= metric.upper
    assert dxy <= metric(x, z) + metric(z, y) + 1e-9


@given(x=image, y=image)
def test_tiled_rms_bounds_rms_from_above(x, y):
    # the maximum over tiles of equal size is at least their root-mean-square
    assert tiled_rms_distance(x, y, tiles=4) >= rms_distance(x, y) - 1e-9


def test_known_values():
    black, white = np.zeros((4, 4, 3), np.float32), np.ones((4, 4, 3), np.float32)
    assert rms_distance(black, white) == pytest.approx(1.0)
    half = black.copy()
    half[:2] = 1.0
    assert rms_distance(black, half) == pytest.approx(np.sqrt(0.5))
    assert tiled_rms_distance(black, half, tiles=2) == pytest.approx(1.0)


def test_resizes_to_common_side():
    x = np.full((16, 16, 3), 0.25, np.float32)
    y = np.full((8, 8, 3), 0.75, np.float32)
    assert rms_distance(x, y) == pytest.approx(0.5, abs=1e-6)


def test_every_metric_declares_direction_and_range():
    for m in METRICS + [AlignedRMSDistance(), MultiscaleRMSDistance(), MultiscaleRMSDistance(zooms=(1.0,), scales=(0.5, 0.25))]:
        assert m.higher_is_better is False and (m.lower, m.upper) == (0.0, 1.0)
        assert get_distance(m.to_dict()) == m
    with pytest.raises(ValueError, match="unknown distance"):
        get_distance("sscd")


@given(x=image, y=image)
def test_multiscale_rms_is_a_bounded_minimum_over_more_candidates(x, y):
    # the sharp key is always a candidate: never above aligned_rms, zero on the key itself
    m = MultiscaleRMSDistance()
    assert 0.0 <= m(x, y) <= AlignedRMSDistance()(x, y) + 1e-12
    assert m(y, y) == 0.0


@pytest.mark.parametrize("spec", [
    {"name": "multiscale_rms", "scales": [0.1]}, {"name": "multiscale_rms", "scales": [1.5]},
    {"name": "multiscale_rms", "scales": []}, {"name": "multiscale_rms", "scales": 0.5},
    {"name": "multiscale_rms", "scales": ["0.5"]}, {"name": "multiscale_rms", "scales": [True]},
    {"name": "multiscale_rms", "scales": [float("nan")]}, {"name": "multiscale_rms", "scales": [0.5] * 9},
])
def test_bad_scales_refused_naming_the_field(spec):
    # a key set file names its metric's parameters: untrusted input, refused with the field
    with pytest.raises(InputError, match="distance.scales") as e:
        get_distance(spec)
    assert e.value.field == "distance.scales"


@pytest.mark.parametrize("zooms", [0.9, [0.2], [], ["x"]])
def test_bad_zooms_refused_naming_the_field(zooms):
    with pytest.raises(InputError) as e:
        get_distance({"name": "multiscale_rms", "zooms": zooms})
    assert e.value.field == "distance.zooms"


def test_multiscale_round_trips_through_its_dict():
    m = get_distance({"name": "multiscale_rms", "zooms": [1, 0.9], "scales": [0.5, 0.25]})
    assert m.to_dict() == {"name": "multiscale_rms", "side": None, "zooms": [1.0, 0.9], "scales": [0.5, 0.25]}
    assert get_distance(m.to_dict()) == m
