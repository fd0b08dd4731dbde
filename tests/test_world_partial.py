"""The partial-memorization world's recipe pieces: web-like captions, near-duplicates in
D_S, the recipe's defaults, linked shared parts and the memorization summary."""
import json

import numpy as np
import pytest

from attribcheck.data.dataset import CaptionDataset, Sample
from attribcheck.lab.datasets.webcaptions import (MAX_CHARS, TEMPLATES, duplicate, emoji_name, near_duplicate,
                                                  short_name, web_caption)
from attribcheck.lab.world.config import WorldConfig


def _images(n, side=16, seed=0):
    """Smooth pictures (4x4 colour blocks upsampled), like emoji and unlike white noise."""
    from attribcheck import images as _img

    rng = np.random.default_rng(seed)
    return [_img.resize(rng.uniform(0, 1, (4, 4, 3)).astype(np.float32), side) for _ in range(n)]


def _emoji_like(n):
    # real code points, so emoji_name() resolves them
    cps = [0x1F600 + i for i in range(n)]
    return CaptionDataset([Sample(f"emoji-{cp:05x}", web_caption(emoji_name(f"emoji-{cp:05x}"), f"emoji-{cp:05x}"), im)
                           for cp, im in zip(cps, _images(n))], "emoji-web")


def test_captions_are_seeded_and_vary():
    name = "smiling face with open mouth and cold sweat"
    draws = [web_caption(name, "emoji-1f605", d) for d in range(40)]
    assert draws == [web_caption(name, "emoji-1f605", d) for d in range(40)]  # deterministic
    assert len(set(draws)) >= 8  # paraphrased, not one string
    assert all(len(c) <= MAX_CHARS for c in draws)
    assert any("smiling face" in c and "cold sweat" not in c for c in draws)  # the short form occurs
    assert any("cold sweat" in c for c in draws)
    assert [web_caption(name, "emoji-1f605", d, seed=1) for d in range(40)] != draws  # the seed matters


def test_short_names_drop_history_and_qualifiers():
    assert short_name("smiling face with open mouth and cold sweat") == "smiling face"
    assert short_name("black sun with rays") == "sun"
    assert short_name("heavy black heart") == "black heart"
    assert short_name("ox") == "ox"


def test_templates_fit_the_text_window_even_for_long_names():
    long = "clockwise downwards and upwards open circle arrows"
    for d in range(50):
        c = web_caption(long, "emoji-1f503", d)
        assert len(c) <= MAX_CHARS and ("arrows" in c or "clockwise" in c)
    assert all("{name}" in t for t, _ in TEMPLATES)


def test_duplicates_repeat_a_share_with_new_captions_and_near_identical_images():
    data = _emoji_like(50)
    out, counts = duplicate(data, 0.2, (3, 5), jitter=0.03, seed=7)
    again, counts2 = duplicate(data, 0.2, (3, 5), jitter=0.03, seed=7)
    assert out.ids == again.ids and out.captions == again.captions and counts == counts2
    assert all(np.array_equal(a.image, b.image) for a, b in zip(out, again))
    dup = {k: v for k, v in counts.items() if v > 1}
    assert len(dup) == 10 and all(3 <= v <= 5 for v in dup.values())
    assert len(out) == sum(counts.values())
    by_id = {s.id: s for s in out}
    captions_per_image = []
    for orig, k in dup.items():
        copies = [by_id[orig]] + [by_id[f"{orig}~c{c}"] for c in range(1, k)]
        captions_per_image.append(len({s.caption for s in copies}))
        for s in copies[1:]:
            rms = float(np.sqrt(np.mean((s.image - copies[0].image) ** 2)))
            assert 0 < rms < 0.06  # near-identical, not identical
    assert max(captions_per_image) > 1  # several captions for one image
    # the originals keep their place, image and caption; singletons are untouched
    assert [s.id for s in out if "~" not in s.id] == data.ids
    assert duplicate(data, 0.2, (3, 5), jitter=0.03, seed=8)[1] != counts  # the seed matters


def test_no_duplication_is_the_identity():
    data = _emoji_like(12)
    out, counts = duplicate(data, 0.0, (1, 1), jitter=0.0, seed=0)
    assert out.ids == data.ids and set(counts.values()) == {1}
    assert near_duplicate(data[0].image, data[0].id, 0, 0.05) is data[0].image
    with pytest.raises(ValueError):
        duplicate(data, 0.5, (3, 2), jitter=0.0, seed=0)


def test_existing_world_recipe_is_unchanged():
    """New recipe fields default to the emoji world's behaviour: its world.json still loads
    as the default recipe (so `world build --out fixtures/world` resumes, not refuses)."""
    from pathlib import Path

    shipped = Path(__file__).parent.parent / "fixtures" / "world" / "world.json"
    cfg = WorldConfig.load(shipped)
    assert cfg == WorldConfig()
    assert cfg.source_duplicate_share == 0 and cfg.shared_from == ""


def test_partial_recipe_round_trips():
    from pathlib import Path

    path = Path(__file__).parent.parent / "fixtures" / "world-partial" / "world.json"
    if not path.exists():
        pytest.skip("the partial world is not built in this checkout")
    cfg = WorldConfig.load(path)
    assert WorldConfig.from_json(cfg.to_json()) == cfg
    assert cfg.source_duplicate_share > 0 and cfg.datasets == ["emoji-web"]


def test_duplicated_source_and_linked_shared_parts(tmp_path):
    """The builder's D_S expansion is seeded and recorded; shared parts link to another world."""
    from attribcheck.lab.world.build import WorldBuilder
    from attribcheck.lab.world.layout import mark_done

    other = tmp_path / "w1" / "shared"
    other.mkdir(parents=True)
    mark_done(other)
    cfg = WorldConfig(datasets=["emoji-web"], pretrain_size=10, source_size=20, domain_extra=5, real_pool=10,
                      source_duplicate_share=0.25, source_duplicate_copies=[2, 3], near_duplicate_jitter=0.03,
                      shared_from="../w1")
    b = WorldBuilder(tmp_path / "w2", cfg)
    b.shared()
    assert (tmp_path / "w2" / "shared").is_symlink() and (tmp_path / "w2" / "shared" / ".done").exists()
    _, splits = b.data("emoji-web")
    d_s = splits["source"]
    record = json.loads((tmp_path / "w2" / "emoji-web" / "source_set.json").read_text())
    assert [p[0] for p in record["pairs"]] == d_s.ids
    assert sum(v > 1 for v in record["copies"].values()) == 5
    assert 20 + 5 <= len(d_s) <= 20 + 10
    assert b.data("emoji-web")[1]["source"].ids == d_s.ids
    with pytest.raises(FileNotFoundError):
        WorldBuilder(tmp_path / "w3", WorldConfig(shared_from="../nowhere")).shared()


def test_source_summary_splits_groups():
    from attribcheck.lab.world.memorization import bins, source_summary

    ids = ["a", "a~c1", "b", "c", "d"]
    r = np.array([[0.05, 0.3], [0.2, 0.12], [0.3, 0.3], [0.16, 0.1], [0.4, 0.2]])
    s = source_summary(r, ids, {"a": 2, "b": 1, "c": 1, "d": 1}, None, 0.15)
    assert s["all"]["best_of_seeds"] == pytest.approx(3 / 5) and s["all"]["one_seed"] == pytest.approx(1 / 5)
    assert s["duplicated"]["best_of_seeds"] == 1.0 and s["singleton"]["best_of_seeds"] == pytest.approx(1 / 3)
    assert s["images"] == {"images": 4, "best_of_seeds": 0.5}
    assert bins(np.array([0.05, 0.12, 0.17, 0.22, 0.3])) == [0.2] * 5


def test_source_summary_reports_every_seed_but_best_of_the_query_seeds_only():
    from attribcheck.lab.world.memorization import source_summary

    ids = ["a", "b"]
    # third column: the infringer's generation seed, not a query seed
    r = np.array([[0.05, 0.3, 0.3], [0.3, 0.3, 0.1]])
    s = source_summary(r, ids, {}, None, 0.15, n_query=2)
    assert s["all"]["best_of_seeds"] == 0.5 and s["all"]["per_seed"] == [0.5, 0.0, 0.5]


def test_public_part_is_whole_images_and_only_it_feeds_overlap_innocents(tmp_path):
    """D_S's public share is drawn by image (a copy is public with its original), recorded,
    seeded; the overlap innocent's D_S pairs all come from it."""
    from attribcheck.lab.datasets.webcaptions import original_id
    from attribcheck.lab.world.build import WorldBuilder

    cfg = WorldConfig(datasets=["emoji-web"], pretrain_size=10, source_size=20, domain_extra=5, real_pool=10,
                      source_duplicate_share=0.25, source_duplicate_copies=[2, 3], public_share=0.5, suspect_size=8)
    b = WorldBuilder(tmp_path / "w", cfg)
    _, splits = b.data("emoji-web")
    record = json.loads((tmp_path / "w" / "emoji-web" / "public.json").read_text())
    assert len(record["images"]) == 10
    public = set(record["images"])
    assert {original_id(i) for i in splits["public"].ids} == public
    assert [i for i in splits["source"].ids if original_id(i) in public] == splits["public"].ids
    assert WorldBuilder(tmp_path / "w", cfg).data("emoji-web")[1]["public"].ids == splits["public"].ids
    b._grid = np.zeros((len(b.domain_prompts(splits)), cfg.generation_seeds, 16, 16, 3), np.float32)
    overlap = dict((n, t) for n, t, _ in b.suspect_plan(splits))["innocent-overlap-s0"]
    d_s_ids = set(splits["source"].ids)
    assert {i for i in overlap.ids if i in d_s_ids} <= set(splits["public"].ids)
    # all of D_S is public by default (the emoji world)
    assert WorldBuilder(tmp_path / "w2", WorldConfig(**{**cfg.to_dict(), "public_share": 1.0})).data(
        "emoji-web")[1]["public"].ids == splits["source"].ids


def test_shadow_cache_ignores_key_selection_fields():
    """Re-selecting keys (other filters, k, thresholds) keeps trained shadows; training fields do not."""
    cfg = WorldConfig()
    same = WorldConfig(**{**cfg.to_dict(), "key_filters": {"detection": ["base", "public"]}, "k": 12})
    assert same.training_identity() == cfg.training_identity()
    assert WorldConfig(**{**cfg.to_dict(), "public_share": 0.5}).training_identity() != cfg.training_identity()
