"""The audit of a suspect whose answers went through a declared postprocess: the keys are seen
through the same steps, delta_0 is carried through them, and the null is measured through them.

Most steps shrink every distance (an upscale or a round trip averages neighbouring pixels), so
the key set's delta_0 would be loose through them: in the partial world a half-size round trip
brought an innocent within it of 23 of 39 keys. delta_0 is carried over on the keys alone
(`carried_delta_0`), as the quantile it holds among the distances between different keys: no
innocent model's answer enters the threshold that its own answers are then counted against.

The innocent models the manifest lists (`[[innocents]]`: models, or folders of their answers,
that took no part in selecting the keys) answer every key caption under every query seed once
per audit; their answers, passed through the suspect's steps, are measured against the keys
passed through them. p0 is the bound the audit puts on any null (score.p0_upper) over those
models, and never below the untouched key set's p0; the innocent level is the most keys any
of them reproduces that way.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from attribcheck.audit import score
from attribcheck.audit.auditor import Auditor, hold_to_the_others, same_reference
from attribcheck.audit.conformance import conformance
from attribcheck.audit.postprocess import Postprocess
from attribcheck.audit.reconstruct import _checked, distances_to
from attribcheck.errors import InputError


def innocent_answers(auditor, specs, runtime=None, cache=None) -> dict[str, list[list[np.ndarray]]]:
    """Per innocent model: its answers (RGB, on each key's background) to every key caption
    under every query seed, held to a suspect's standard, and refused (InputError naming it)
    when they fail it: degenerate answers; answers that do not conform to the protocol (too
    blurred, too sharp, another size: a copy of the source's answers under a checkerboard
    reproduces no key untouched, and every key once a declared blur averages the checkerboard
    away); answers that reproduce the keys as an attributed suspect would; or a model that is
    one of the key set's selection references under another name (recognised by its
    distances on the keys, which equal the stored ones). Asked once per auditor."""
    memo = auditor.__dict__.setdefault("_innocent_answers", {})
    from attribcheck.models.spec import open_generator

    ks = auditor.keyset
    seeds = [int(s) for s in ks.query_seeds]
    prompts = [c for c in ks.captions for _ in seeds]
    qseeds = [s for _ in ks.captions for s in seeds]
    targets = [k for k in ks.images for _ in seeds]
    for spec in specs:
        if spec.name not in memo:
            from attribcheck.images import answer_side_limit

            gen = open_generator(spec, ks.protocol, runtime, cache, answer_side_limit(*ks.images[0].shape[:2]))
            flat = _checked(gen, prompts, qseeds, gen.generate(prompts, qseeds), targets)
            fit = conformance(flat, ks.images, auditor.min_sharpness)
            if fit.departs:
                raise InputError(f"{spec.name}: its answers depart from the protocol (sharpness {fit.sharpness:.2f} of "
                                 f"the keys', outside [{fit.min_sharpness:g}, {fit.max_sharpness:g}], or "
                                 f"{fit.answer_size[0]}x{fit.answer_size[1]} for keys of {fit.key_size[0]}x"
                                 f"{fit.key_size[1]}): an innocent's answers are held to the suspects' standard",
                                 field="innocents")
            grid = [flat[i * len(seeds):(i + 1) * len(seeds)] for i in range(len(ks))]
            # an "innocent" that reproduces the keys untouched is not one: checked once, here
            d = distances_to(grid, ks.images, auditor.distance).min(axis=1)
            ref = same_reference(ks, d)
            if ref is not None:
                raise InputError(f"{spec.name} is the key set's selection reference {ref!r} (its distances on the "
                                 f"keys are the stored ones): keys were chosen for it to miss, its rate is biased "
                                 f"low and cannot bound the null", field="innocents")
            m = score.matches(d, auditor.delta_0)
            p = score.p_value(m, len(ks), auditor.p0)
            if p < auditor.alpha:
                raise InputError(f"{spec.name} reproduces {m} of {len(ks)} keys untouched (p = {p:.2g} < alpha "
                                 f"{auditor.alpha}): it would be attributed, so it cannot bound the null",
                                 field="innocents")
            memo[spec.name] = grid
    return {spec.name: memo[spec.name] for spec in specs}


MIN_QUANTILE = 0.01  # delta_0 is carried at no lower a quantile than this (a tail of a few pairs is noise)


def carried_delta_0(delta_0: float, keys, post: Postprocess, distance) -> float:
    """delta_0 through `post`: scaled by how `post` moves the distances between different keys
    at the quantile delta_0 holds among them (at least MIN_QUANTILE)."""
    seen = [post(k) for k in keys]
    pairs = [(i, j) for i in range(len(keys)) for j in range(len(keys)) if i != j]
    plain = np.array([distance(keys[i], keys[j]) for i, j in pairs])
    moved = np.array([distance(seen[i], seen[j]) for i, j in pairs])
    q = min(max(float(np.mean(plain < delta_0)), MIN_QUANTILE), 1 - MIN_QUANTILE)
    low = float(np.quantile(plain, q))
    return delta_0 * float(np.quantile(moved, q)) / low if low > 0 else delta_0


def through(auditor: Auditor, post: Postprocess, answers: dict[str, list[list[np.ndarray]]]) -> Auditor:
    """An Auditor for answers that went through `post` (no steps: `auditor` itself)."""
    if not post:
        return auditor
    if not answers:
        raise InputError("measuring the null through a postprocess needs innocent models ([[innocents]])",
                         field="innocents")
    assert auditor.p0 is not None and auditor.delta_0 is not None  # set by Auditor.__post_init__
    ks = auditor.keyset
    seen = replace(ks, keys=[replace(k, image=post(k.image)) for k in ks.keys])
    targets = seen.images
    delta_0 = min(carried_delta_0(auditor.delta_0, ks.images, post, auditor.distance), auditor.distance.upper)
    distances = {name: distances_to([[post(a) for a in outs] for outs in grid], targets, auditor.distance).min(axis=1)
                 for name, grid in answers.items()}
    for name, d in distances.items():  # each held to the others through the same steps (auditor.py)
        hold_to_the_others(f"{name} ({'+'.join(post.to_list())})", d,
                           [v for n, v in distances.items() if n != name], delta_0, auditor.alpha,
                           "the other innocents through the same steps", floor=auditor.p0)
    hits = sum(score.matches(d, delta_0) for d in distances.values())
    p0 = max(auditor.p0, score.p0_upper(hits, len(distances) * len(ks), len(ks)))
    level = max(score.conf(d, delta_0) for d in distances.values())
    out = Auditor(seen, alpha=auditor.alpha, delta_0=delta_0, p0=p0, innocent_level=level,
                  min_sharpness=auditor.min_sharpness, r_min=auditor.r_min)
    out.null_models = sorted(set(auditor.null_models) | {f"{n} ({'+'.join(post.to_list())})" for n in distances})
    return out

