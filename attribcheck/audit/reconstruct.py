"""Query a model with captions and measure how close it comes to reference images.

A suspect's answers are checked before any distance is taken. An answer no verdict can be
read from is a DegenerateOutputError for that suspect, never a number: NaN distances are
scored as misses (NaN < delta_0 is false), so NaN output would read as clean, and an image
smaller than the key would be compared as an upscaled blur (a 2x2 grey answer was attributed).

Degenerate means, per answer, after compositing transparency onto the key's background:
- non-finite pixel values;
- smaller than the key image in either dimension;
- constant (blank): all but BLANK_OUTLIERS of its values (pixels x channels) lie within
  BLANK_SPREAD of their median: an all-black, all-white or all-grey image, a fully transparent
  one, or one of those with a few stray pixels added to dodge an exact test. This is about
  the whole image: an emoji on a white background has far more than 1% ink, so a model that
  draws white backgrounds is not refused. Noise added to a blank image escapes this test and
  is scored like any answer: keys that a flat image comes within delta_0 of are weak keys,
  for key selection to refuse.
One degenerate answer refuses the suspect: a verdict over the rest would rest on answers the
suspect chose to give (a safety filter's black squares included; re-collect those queries).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from attribcheck import images
from attribcheck.errors import DegenerateOutputError, InputError
from attribcheck.metrics.distance import Distance
from attribcheck.models.generator import Generator

BLANK_SPREAD = 1.5 / 255  # about one 8-bit level either side of the median value ...
BLANK_OUTLIERS = 0.01  # ... for all but this share of the values


def degeneracy(image: np.ndarray, target: np.ndarray) -> str | None:
    """Why `image` (a model's answer for `target`'s caption) is degenerate, or None."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3 or image.shape[-1] not in (3, 4):
        return f"not an HxWx3 image (shape {image.shape})"
    if not np.all(np.isfinite(image)):
        return "non-finite pixel values"
    if image.shape[0] < target.shape[0] or image.shape[1] < target.shape[1]:
        return (f"{image.shape[0]}x{image.shape[1]} pixels, smaller than the key's "
                f"{target.shape[0]}x{target.shape[1]}")
    rgb = images.composite(image, images.border_colour(target))
    median = float(np.median(rgb))
    if np.mean(np.abs(rgb - median) > BLANK_SPREAD) < BLANK_OUTLIERS:
        return (f"constant ({100 - 100 * BLANK_OUTLIERS:.0f}% of its values within {BLANK_SPREAD * 255:.1f}/255 "
                f"of {median:.3f})")
    return None


def _checked(generator, prompts: Sequence[str], seeds: Sequence[int], outputs, targets) -> list[np.ndarray]:
    """The answers composited to RGB, or DegenerateOutputError naming the first bad one (its
    file, for a folder suspect) and how many there are."""
    name = getattr(generator, "name", "suspect")
    if len(outputs) != len(prompts):
        raise DegenerateOutputError(f"answered {len(outputs)} images for {len(prompts)} queries", name)
    bad, out = [], []
    for p, s, o, t in zip(prompts, seeds, outputs, targets):
        why = degeneracy(o, t)
        if why:
            bad.append((p, s, why))
        else:
            out.append(images.composite(np.asarray(o, np.float32), images.border_colour(t)))
    if bad:
        p, s, why = bad[0]
        file_for = getattr(generator, "file_for", None)
        where = (file_for(p, s) if file_for else None) or name
        raise DegenerateOutputError(f"{why} ({len(bad)} of {len(prompts)} answers of {name} are degenerate; no "
                                    f"verdict is read from them)", where, f"query ({p!r}, seed {s})")
    return out


def distances_to(outputs, targets: Sequence[np.ndarray], distance: Distance) -> np.ndarray:
    """outputs (N, S) images, targets N images -> (N, S) distances."""
    d = np.array([[distance(o, t) for o in outs] for outs, t in zip(outputs, targets)], dtype=np.float64)
    if not np.all(np.isfinite(d)):
        raise DegenerateOutputError("non-finite distances")
    return d


def reconstruct(generator: Generator, captions: Sequence[str], targets: Sequence[np.ndarray],
                seeds: Sequence[int], distance: Distance) -> tuple[np.ndarray, np.ndarray]:
    """Per key: r_M(k) = min over seeds of d(G_M(c_k, s), x_k), and the seed that reached it."""
    seeds = [int(s) for s in seeds]
    if len(captions) != len(targets):
        raise InputError(f"{len(captions)} captions for {len(targets)} target images; one target per caption")
    if not len(captions):
        return np.zeros(0), np.zeros(0, dtype=int)
    if not seeds:
        raise InputError("no query seeds")
    prompts = [c for c in captions for _ in seeds]
    qseeds = [s for _ in captions for s in seeds]
    per_query = [t for t in targets for _ in seeds]
    answers = _checked(generator, prompts, qseeds, generator.generate(prompts, qseeds), per_query)
    grid = [answers[i * len(seeds):(i + 1) * len(seeds)] for i in range(len(captions))]
    d = distances_to(grid, targets, distance)
    return d.min(axis=1), np.asarray(seeds)[d.argmin(axis=1)]


def reconstruction_distances(generator: Generator, captions: Sequence[str], targets: Sequence[np.ndarray],
                             seeds: Sequence[int], distance: Distance) -> np.ndarray:
    """r_M(k) = min over seeds of d(G_M(c_k, s), x_k), one value per key."""
    return reconstruct(generator, captions, targets, seeds, distance)[0]
