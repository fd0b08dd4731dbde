"""Key selection with thresholds calibrated from the references, on generators without torch.

The source memorizes a known subset of prompts (the same picture for every seed, a little
noise); for the rest it draws a fresh picture per seed, as references do for every prompt.
Partial memorization: most candidates are not memorized, and selection has to find the few.
"""
from __future__ import annotations

import zlib

import numpy as np
import pytest
from scipy import stats

from attribcheck.errors import InputError
from attribcheck.audit.power import min_matches, power, power_report
from attribcheck.audit.score import p_value
from attribcheck.keys.select import GenerationSelector, SelectionContext, describe
from attribcheck.keys.thresholds import Thresholds
from attribcheck.metrics.distance import get_distance

PROMPTS = [f"prompt {i}" for i in range(40)]
MEMORIZED = set(PROMPTS[:8])  # a fifth of the candidates


def picture(*key) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(repr(key).encode()))
    base = rng.uniform(0.3, 0.7, (1, 1, 3)) + rng.normal(0, 0.15, (8, 8, 3))
    return np.clip(base, 0, 1).astype(np.float32)


class Model:
    def __init__(self, name: str, memorized=frozenset(), copies: dict | None = None):
        self.name, self.memorized, self.copies = name, memorized, copies or {}

    def generate(self, prompts, seeds):
        out = []
        for p, s in zip(prompts, seeds):
            if p in self.memorized:
                noise = np.random.default_rng([int(s), 1]).normal(0, 0.01, (8, 8, 3))
                out.append(np.clip(picture("memorized", p) + noise, 0, 1).astype(np.float32))
            elif p in self.copies:
                out.append(self.copies[p])
            else:
                out.append(picture(self.name, p, int(s)))
        return out


def context(thresholds=Thresholds(), references=None, calls=None) -> SelectionContext:
    refs = references or {"base": Model("base"), "twin": Model("twin")}
    progress = (lambda stage, done, total: calls.append((stage, done, total))) if calls is not None else None
    return SelectionContext(source=Model("source", frozenset(MEMORIZED)), references=refs,
                            calibration={"cal": Model("cal")}, distance=get_distance("rms"),
                            thresholds=thresholds, query_seeds=[0, 1], prompts_per_batch=7, progress=progress)


def test_calibrated_selection_finds_exactly_the_memorized_prompts():
    calls = []
    ks = GenerationSelector(n=4).select(context(calls=calls), PROMPTS)
    assert set(ks.captions) == MEMORIZED
    c = ks.selection["counts"]
    assert c["candidates"] == 40 and c["not_memorized"] == 32 and c["passed"] == 8
    assert ks.selection["source_agreeing"][3] == 8  # the memorized: every other generation agrees
    # delta_0 is the references' 5% quantile over the candidates, recorded with the mode
    assert ks.selection["thresholds"]["mode"] == "calibrated"
    assert ks.delta_0 == pytest.approx(ks.selection["thresholds"]["delta_0"])
    assert all(k.r_source < ks.delta_0 <= min(k.r_references.values()) for k in ks.keys)
    assert ks.reference_roles == {"base": "selection", "twin": "selection", "cal": "calibration"}
    # streamed in batches of 7 prompts, with progress per stage
    stages = {s for s, _, _ in calls}
    assert {"source generations", "reference base", "reference twin"} <= stages
    assert ("source generations", 40, 40) in calls and ("source generations", 7, 40) in calls


def test_a_reference_that_reproduces_a_key_drops_it_and_is_counted():
    copies = {p: Model("source", frozenset(MEMORIZED)).generate([p], [10_000])[0] for p in PROMPTS[:3]}
    ks = GenerationSelector(n=4).select(context(references={"base": Model("base"), "twin": Model("twin", copies=copies)}),
                                        PROMPTS)
    assert set(ks.captions) == MEMORIZED - set(PROMPTS[:3])
    assert ks.selection["counts"]["reproduced_by"] == {"base": 0, "twin": 3}
    assert "3 reproduced by reference twin" in describe(ks)


def test_fixed_thresholds_too_strict_select_nothing_and_say_why():
    strict = Thresholds(mode="fixed", delta_0=0.001)
    ks = GenerationSelector(n=4).select(context(strict), PROMPTS)
    assert len(ks) == 0
    text = describe(ks)
    assert "delta_0 = 0.0010 (fixed)" in text and "40 not memorized" in text and "0 passed" in text


def test_fixed_paper_thresholds_still_work_on_strong_memorization():
    ks = GenerationSelector(n=4).select(context(Thresholds(mode="fixed")), PROMPTS)
    assert set(ks.captions) == MEMORIZED and ks.delta_0 == 0.15


@pytest.mark.parametrize("bad", [dict(mode="magic"), dict(innocent_rate=0.0), dict(innocent_rate=0.7),
                                 dict(delta_0=-1.0), dict(agreement=0.0)])
def test_threshold_rules_are_validated(bad):
    with pytest.raises(ValueError):
        Thresholds(**bad)


def test_calibrated_delta_0_is_the_reference_quantile():
    d = np.linspace(0.05, 0.5, 101)
    assert Thresholds(innocent_rate=0.1).choose_delta_0(d) == pytest.approx(np.quantile(d, 0.1, method="lower"))
    assert Thresholds(mode="fixed", delta_0=0.2).choose_delta_0(d) == 0.2
    with pytest.raises(InputError, match="reference models"):
        Thresholds().choose_delta_0(np.zeros(0))


@pytest.mark.parametrize("k, p0, alpha", [(12, 0.075, 0.01), (30, 0.02, 0.01), (30, 0.2, 0.001), (5, 0.5, 0.01)])
def test_power_matches_the_binomial_test(k, p0, alpha):
    m = min_matches(k, p0, alpha)
    brute = next((j for j in range(1, k + 1) if stats.binom.sf(j - 1, k, p0) < alpha), None)
    assert m == brute
    if m is not None:
        assert p_value(m, k, p0) < alpha <= p_value(m - 1, k, p0) if m > 1 else True
        assert power(k, p0, alpha, 1.0) == pytest.approx(1.0)
        assert power(k, p0, alpha, 0.3) <= power(k, p0, alpha, 0.6)
        assert power_report(k, p0, alpha).min_conf == m / k
    else:
        assert power(k, p0, alpha, 0.9) == 0.0 and "no suspect can be attributed" in power_report(k, p0, alpha).summary()


class PartialSource(Model):
    """Reproduces each memorized prompt's picture with one seed in four only (the rest fresh)."""

    def generate(self, prompts, seeds):
        return [Model.generate(self, [p], [s])[0] if int(s) % 4 == 0 else picture(self.name, p, int(s))
                for p, s in zip(prompts, seeds)]


def test_partial_memorization_found_by_calibrated_rule_not_by_the_fixed_one():
    ctx = context()
    ctx.source, ctx.query_seeds = PartialSource("source", frozenset(MEMORIZED)), [0, 1, 2, 3]
    ks = GenerationSelector(n=16).select(ctx, PROMPTS)  # 4 of 16 generations are the copy
    assert set(ks.captions) == MEMORIZED
    ctx.thresholds = Thresholds(mode="fixed")
    assert len(GenerationSelector(n=16).select(ctx, PROMPTS)) == 0  # n/2 agreement: nothing


def test_a_twin_filters_keys_but_does_not_calibrate_delta_0():
    """A twin trained on D_S reproduces what the source does; pooled with the null
    references it would drag delta_0 down to its own distances."""
    copies = {p: Model("source", frozenset(MEMORIZED)).generate([p], [10_000])[0] for p in PROMPTS}
    refs = {"base": Model("base"), "twin": Model("twin", copies=copies)}
    alone = GenerationSelector(n=4).select(context(references={"base": Model("base")}), PROMPTS)
    ctx = context(references=refs)
    ctx.filter_only = ("twin",)
    ks = GenerationSelector(n=4).select(ctx, PROMPTS)
    assert ks.delta_0 == alone.delta_0 and ks.selection["thresholds"]["filter_only"] == ["twin"]
    assert len(ks) == 0 and ks.selection["counts"]["reproduced_by"]["twin"] == 8  # all it reproduces is gone


def test_near_duplicate_keys_count_once():
    """A training image repeated under several captions passes every filter each time, but is
    one piece of evidence: the better-ranked copy is kept, the others counted as dropped."""
    from attribcheck.keys.select import _filter
    from attribcheck.metrics.distance import get_distance

    img = np.full((8, 8, 3), 0.5, np.float32)
    other = np.zeros((8, 8, 3), np.float32)
    captions = ["capricorn sticker", "cartoon capricorn", "a gem stone"]
    targets = [img, img + 0.01, other]
    r_source = np.array([0.05, 0.02, 0.05])
    refs = {"base": np.array([0.4, 0.4, 0.4])}
    counts = {}
    keys = _filter(["a", "a~c1", "b"], captions, targets, r_source, refs, 0.15, 30, counts, get_distance("rms"))
    assert [k.id for k in keys] == ["a~c1", "b"] and counts["not_independent"] == 1 and counts["passed"] == 2
    assert len(_filter(["a", "a~c1", "b"], captions, targets, r_source, refs, 0.15, 30, {})) == 3  # no distance: as before


def test_keys_near_public_images_are_dropped_and_counted():
    """The owner's public training images: a model trained on the same public data would
    reproduce them, so a memorized prompt whose key image is public is no evidence."""
    source = Model("source", frozenset(MEMORIZED))
    public = [source.generate([p], [0])[0] for p in PROMPTS[:3]]  # three memorized images are public
    ctx = context()
    ctx.public = public
    ks = GenerationSelector(n=4).select(ctx, PROMPTS)
    assert set(ks.captions) == MEMORIZED - set(PROMPTS[:3])
    assert ks.selection["counts"]["public"] == 3 and ks.selection["thresholds"]["public_images"] == 3
    assert "3 near a public image" in describe(ks)
    # without public images nothing changes
    assert set(GenerationSelector(n=4).select(context(), PROMPTS).captions) == MEMORIZED


def test_detection_drops_public_training_pairs():
    from attribcheck.data.dataset import CaptionDataset, Sample
    from attribcheck.keys.select import DetectionSelector

    source = Model("source", frozenset(MEMORIZED))
    image = lambda p: source.generate([p], [0])[0] if p in MEMORIZED else picture("train", p)  # noqa: E731
    pool = CaptionDataset([Sample(f"id{i}", p, image(p)) for i, p in enumerate(PROMPTS)])
    ctx = context(Thresholds(mode="fixed", delta_0=0.05))  # memorized copies lie ~0.01 away
    ctx.public = [pool[0].image, pool[1].image + 0.005]  # a public image and a re-encoded copy of one
    ks = DetectionSelector().select(ctx, pool)
    assert set(ks.captions) == MEMORIZED - {PROMPTS[0], PROMPTS[1]} and ks.selection["counts"]["public"] == 2


def test_random_baseline_draws_each_training_image_once():
    """Baseline 2 over a D_S where a few images repeat as near-duplicate copies: with `distinct`
    every key is another image (copies skipped and counted); without, the copies come back."""
    from collections import Counter

    from attribcheck.data.dataset import CaptionDataset, Sample
    from attribcheck.keys.select import RandomSelector

    samples = []
    for i in range(12):
        image = picture("train", i)
        samples.append(Sample(f"img{i}", f"prompt {i}", image))
        for c in range(1, 8 if i < 3 else 1):  # three images 8 times each: 21 of the 33 pairs are copies
            jitter = np.random.default_rng([i, c]).normal(0, 0.01, image.shape)
            samples.append(Sample(f"img{i}~c{c}", f"prompt {i}", np.clip(image + jitter, 0, 1).astype(np.float32)))
    pool = CaptionDataset(samples, "d_s")
    ks = RandomSelector(k=10).select(context(), pool)
    originals = [k.id.split("~")[0] for k in ks.keys]
    assert len(ks) == 10 and len(set(originals)) == 10
    assert ks.selection["counts"]["near_duplicates"] == 33 - 12 and ks.selection["distinct"] is True
    assert "21 pairs copying another training image" in describe(ks)
    # each image equally likely: over many draws a repeated image comes up as often as any other
    seen = Counter(pool[i].id.split("~")[0] for seed in range(200)
                   for i in RandomSelector(k=3, seed=seed)._draw(context(), pool)[0])
    repeated, single = np.mean([seen[f"img{i}"] for i in range(3)]), np.mean([seen[f"img{i}"] for i in range(3, 12)])
    assert 1 / 1.5 < repeated / single < 1.5  # drawing pairs would favour them about 8 to 1
    # 12 distinct images: asking for more keys than that returns each image once
    assert len(RandomSelector(k=30).select(context(), pool)) == 12
    plain = RandomSelector(k=10, distinct=False).select(context(), pool)
    assert len({k.id.split("~")[0] for k in plain.keys}) < 10  # same seed, copies drawn again
