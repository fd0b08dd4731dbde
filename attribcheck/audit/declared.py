"""A suspect that declares a postprocess: its answers read through the declaration, checked
against it, and never read more leniently than the undeclared audit would read them.

A declaration is the suspect side's word (or the owner's guess) about what happened to the
answers; nothing in it is evidence. Declared wrongly, it clears an infringer: untouched
answers read against keys seen through a `blur:2` they never went through miss every key
(8 of 12 -> 0 of 12 in the issue's probe). So the answers are asked once and read two ways:

- **declared**: against the keys, delta_0 and null seen through the steps (null_through.py),
  valid only when the answers look like the keys seen through the same steps: their size,
  and their sharpness within [min_sharpness, MAX_SHARPNESS] of those keys' (conformance.py).
  Untouched answers read against blurred keys are 3.6-26 times sharper; honest declarations
  on both tiny worlds lie at 0.46-1.78.
- **untouched**: against the key set itself, exactly as the undeclared audit reads them, and
  only when they conform to the untouched protocol (the undeclared audit reads no verdict
  from other answers either: it is inconclusive on them).

The verdict (the invariant, by construction): **attributed** whenever the untouched reading
attributes; **clean** only when the declared reading is clean and the untouched one, where
it applies, is clean too; otherwise the declared reading, inconclusive with the reason when
the declaration does not fit the answers. A declaration can only ever see more.

The answers are asked in full (early stopping settles one reading, not both).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from attribcheck.audit.conformance import Conformance, _measurable, conformance
from attribcheck.audit.reconstruct import _checked, distances_to
from attribcheck.audit.verdict import ATTRIBUTED, CLEAN, INCONCLUSIVE, Verdict

if TYPE_CHECKING:
    from attribcheck.audit.auditor import Auditor


@dataclass
class Declared:
    verdict: Verdict
    conformance: Conformance  # of the reading the verdict rests on
    auditor: Auditor  # the Auditor of that reading (its key set: the keys seen through the steps, or not)


def _read(auditor, generator, name: str, prompts, qseeds, raw) -> Verdict | None:
    """`auditor`'s verdict on the answers, or None when some answer is smaller than its keys
    (the metric would compare an upscaled blur)."""
    ks = auditor.keyset
    h, w = ks.images[0].shape[:2]
    if any(_measurable(a) and (np.shape(a)[0] < h or np.shape(a)[1] < w) for a in raw):
        return None
    seeds = [int(s) for s in ks.query_seeds]
    answers = _checked(generator, prompts, qseeds, raw, [k for k in ks.images for _ in seeds])
    grid = [answers[i * len(seeds):(i + 1) * len(seeds)] for i in range(len(ks))]
    d = distances_to(grid, ks.images, auditor.distance)
    return auditor.score(name, d.min(axis=1), np.asarray(seeds)[d.argmin(axis=1)])


def read_declared(plain, seen, generator, name: str, steps) -> Declared:
    """The verdict on a declared suspect's answers. `plain`: the manifest's Auditor; `seen`:
    the Auditor through the declared steps (null_through.through); `steps`: their text."""
    ks = plain.keyset
    seeds = [int(s) for s in ks.query_seeds]
    prompts = [c for c in ks.captions for _ in seeds]
    qseeds = [s for _ in ks.captions for s in seeds]
    raw = generator.generate(prompts, qseeds)
    if len(raw) != len(prompts) or not any(_measurable(a) for a in raw):
        _checked(generator, prompts, qseeds, raw, [k for k in ks.images for _ in seeds])  # names what is wrong
    fit_plain = conformance(raw, ks.images, plain.min_sharpness)
    fit_seen = replace(conformance(raw, seen.keyset.images, seen.min_sharpness), declared=tuple(steps))
    untouched = None if fit_plain.departs else _read(plain, generator, name, prompts, qseeds, raw)
    declared = _read(seen, generator, name, prompts, qseeds, raw)
    if untouched is not None and untouched.verdict == ATTRIBUTED:
        return Declared(untouched, fit_plain, plain)  # the declaration cannot lower it
    if declared is None:  # smaller than the keys through the steps: the declaration does not fit
        if untouched is None:
            _checked(generator, prompts, qseeds, raw, [k for k in seen.keyset.images for _ in seeds])
        # answers smaller than the keys through the steps are also smaller than the keys: _checked raised
        assert untouched is not None
        return Declared(replace(untouched, verdict=INCONCLUSIVE, departure=fit_seen.reason()), fit_seen, plain)
    if fit_seen.departs:
        return Declared(replace(declared, verdict=INCONCLUSIVE, departure=fit_seen.reason()), fit_seen, seen)
    if declared.verdict == CLEAN and untouched is not None and untouched.verdict != CLEAN:
        why = (f"read untouched, these answers are {untouched.verdict} ({untouched.matches} of {untouched.k} keys): "
               f"the declared postprocess ({'+'.join(steps)}) cannot clear what the undeclared audit does not")
        return Declared(replace(declared, verdict=INCONCLUSIVE, departure=why), fit_seen, seen)
    return Declared(declared, fit_seen, seen)
