"""Evasion transformations and the crop-aligned metric (no model needed)."""
import numpy as np
import pytest

from attribcheck.errors import InputError

from attribcheck.lab.bench.robust import TRANSFORMS, calibrate, summarise
from attribcheck.audit.auditor import Auditor
from attribcheck.keys.keyset import Key, KeySet
from attribcheck.models.protocol import QueryProtocol
from attribcheck.metrics.distance import get_distance
from tests.folder_world import PRIVATE


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
    with pytest.raises(InputError, match="zooms"):
        get_distance({"name": "aligned_rms", "zooms": [0.1]})


@pytest.mark.parametrize("name", ["resize-down-up", "resize-down-up-bicubic"])
def test_multiscale_metric_recovers_a_half_resolution_round_trip(name):
    rms, aligned, multi = get_distance("rms"), get_distance("aligned_rms"), get_distance("multiscale_rms")
    for seed in range(1, 6):
        key = emoji_like(seed)
        blurred = TRANSFORMS[name](key)
        # the blurred key is a candidate; a different resampler than the metric's leaves a residue
        assert multi(blurred, key) < 0.5 * aligned(blurred, key)
        assert multi(blurred, key) <= aligned(blurred, key) <= rms(blurred, key) + 1e-12


def test_multiscale_metric_does_not_match_other_pictures():
    multi, aligned = get_distance("multiscale_rms"), get_distance("aligned_rms")
    for seed in range(2, 8):  # a sharp unrelated picture still pays for its own detail
        key, other = emoji_like(1), emoji_like(seed)
        assert multi(other, key) > 0.8 * aligned(other, key) > 0
        assert multi(TRANSFORMS["resize-down-up"](other), key) > 0.5 * aligned(other, key)


def _keyset(n=6, delta_0=0.15):
    keys = [Key(f"k{i}", f"caption {i}", emoji_like(i), 0.01, {"ref-calibration": 0.4}) for i in range(n)]
    return KeySet(keys, "generation", delta_0, {"name": "rms", "side": None}, QueryProtocol(), [0, 1],
                  reference_roles={"ref-calibration": "calibration"}, selection=PRIVATE)


def test_calibrate_carries_the_operating_point_to_a_more_lenient_metric():
    """delta_0 on another metric lets the references reproduce as many candidates as the key
    set's delta_0 does on RMS; the calibration reference's key distances are re-measured."""
    ks = _keyset()
    auditor = Auditor(ks, alpha=0.01, p0=0.1)
    targets = [emoji_like(100 + i) for i in range(20)]
    # answers: blurred copies of some targets (close under both), unrelated pictures otherwise
    pool = [[TRANSFORMS["resize-down-up"](t)] if i < 5 else [emoji_like(200 + i)] for i, t in enumerate(targets)]
    answers = {"ref-calibration": (pool, [[emoji_like(300 + i)] for i in range(len(ks))])}
    same, info = calibrate(auditor, "rms", targets, answers)
    assert same is auditor and info["delta_0"] == 0.15
    rms = get_distance("rms")
    for metric in ("aligned_rms", "multiscale_rms"):
        a, info = calibrate(auditor, metric, targets, answers)
        m = get_distance(metric)
        hits_rms = sum(min(rms(o, t) for o in outs) < 0.15 for outs, t in zip(pool, targets))
        hits_m = sum(min(m(o, t) for o in outs) < a.delta_0 for outs, t in zip(pool, targets))
        assert hits_m == hits_rms and a.p0 == 0.1 and a.keyset.distance == m.to_dict()
        assert a.distance == m and a.keyset.keys[0].r_references["ref-calibration"] != 0.4


def test_summary_counts_flips_and_innocent_attributions():
    def row(who, expect, change, conf, verdict, audit=None, declared=None, conf_declared=None):
        r = {"suspect": who, "expect": expect, "change": change, "metric": "rms", "conf": conf, "verdict": verdict,
             "verdict_audit": audit or verdict}
        if declared:
            r.update(verdict_declared=declared, conf_declared=conf_declared)
        return r

    rows = [row("inf", "infringing", "none", 0.6, "attributed", declared="attributed", conf_declared=0.6),
            row("inf", "infringing", "crop10", 0.1, "clean", "inconclusive", "attributed", 0.55),
            row("inn", "innocent", "none", 0.0, "clean", declared="clean", conf_declared=0.0),
            row("inn", "innocent", "crop10", 0.5, "attributed", "inconclusive", "clean", 0.0)]
    s = summarise(rows)
    crop = s["crop10/rms"]
    assert (crop["conf_loss"], crop["flips_to_clean"], crop["innocents_attributed"]) == (pytest.approx(0.5), 1, 1)
    assert crop["audit"] == {"infringers_attributed": 0, "innocents_attributed": 0}
    assert crop["declared"] == {"conf_loss": pytest.approx(0.05), "infringers_attributed": 1,
                                "innocents_attributed": 0, "flips_to_clean": 0}
    assert s["none/rms"]["conf_loss"] == 0.0 and s["none/rms"]["audit"]["infringers_attributed"] == 1
    # rows without a declared reading (another metric, no innocent models) leave it unmeasured
    assert summarise([{**r, "metric": "aligned_rms"} for r in rows if "verdict_declared" not in r] or
                     [row("inf", "infringing", "none", 0.6, "attributed")])["none/rms"]["declared"] is None


def test_the_audit_reading_makes_blurred_answers_inconclusive_and_the_declared_one_decides():
    """bench robust's readings of one answer set: an innocent blurred by a round trip is
    inconclusive as the audit reads it (too blurry for the untouched null), and not attributed
    with the round trip declared (its null measured through it, never below the key set's)."""
    from attribcheck.audit.null_through import through
    from attribcheck.audit.postprocess import Postprocess
    from attribcheck.lab.bench.robust import audited

    refs = ("a", "b", "c")
    keys = [Key(f"k{i}", f"c{i}", emoji_like(i), 0.0, {n: 0.4 for n in refs}) for i in range(30)]
    ks = KeySet(keys, "detection", 0.12, {"name": "rms"}, QueryProtocol(), [0], "source",
                {n: "calibration" for n in refs}, selection=PRIVATE)
    a = Auditor(ks, p0=0.02)
    round_trip = Postprocess.parse(["scale:0.25", "scale:4"])
    # innocents: each key's picture with the disc elsewhere, in another colour
    innocent = [np.array([emoji_like(1000 + i)]) for i in range(len(keys))]
    others = {n: [[emoji_like(2000 + 50 * j + i)] for i in range(len(keys))] for j, n in enumerate(refs)}
    declared = through(a, round_trip, others)
    row = audited(a, innocent, round_trip, declared)
    assert row["sharpness"] < 0.6 and row["verdict_audit"] == "inconclusive"
    assert row["verdict_declared"] != "attributed" and row["p0_declared"] >= a.p0
    # the untouched answers: sharp, and read the same three ways
    plain = audited(a, innocent, Postprocess(), through(a, Postprocess(), others))
    assert plain["sharpness"] > 0.6 and plain["verdict_audit"] == plain["verdict"] == "clean"
