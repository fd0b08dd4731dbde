"""The dataset mixer: a suspect's fine-tuning set with generation rate rho."""
from __future__ import annotations

import numpy as np

from attribcheck.data.dataset import CaptionDataset, Sample


def generated_dataset(prompts: list[str], grid: np.ndarray, name: str = "generated") -> CaptionDataset:
    """Source generations as caption-image pairs: grid is (prompts, seeds, H, W, 3)."""
    samples = [Sample(f"gen-{i:05d}-s{j}", p, grid[i, j]) for i, p in enumerate(prompts)
               for j in range(grid.shape[1])]
    return CaptionDataset(samples, name)


def mix(real: CaptionDataset, generated: CaptionDataset, n: int, rho: float, seed: int,
        name: str = "mixed", weights=None) -> CaptionDataset:
    """n pairs: round(rho * n) from `generated`, the rest from `real`; shuffled, seeded.

    Without `weights`, the generated pairs have distinct prompts (an infringer querying the
    source once per prompt). With `weights` (one per generated pair: how common its prompt
    is in the domain), distinct generations are drawn with probability in proportion, so a
    popular prompt comes up several times, each time with another of its seeds, as it
    would for an infringer who prompts the way the domain's users write."""
    rng = np.random.default_rng(seed)
    n_gen = int(round(rho * n))
    if n - n_gen > len(real):
        raise ValueError(f"needs {n - n_gen} real pairs; {len(real)} available")
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (len(generated),) or not np.all(w > 0):
            raise ValueError("weights: one positive weight per generated pair")
        if n_gen > len(generated):
            raise ValueError(f"rho={rho} needs {n_gen} generated pairs; {len(generated)} available")
        picked = [generated[int(i)] for i in rng.choice(len(generated), n_gen, replace=False, p=w / w.sum())]
    else:
        by_prompt: dict[str, list[int]] = {}
        for i, s in enumerate(generated):
            by_prompt.setdefault(s.caption, []).append(i)
        prompts = sorted(by_prompt)
        if n_gen > len(prompts):
            raise ValueError(f"rho={rho} needs {n_gen} distinct generated prompts; {len(prompts)} available")
        picked = [generated[int(rng.choice(by_prompt[prompts[int(j)]]))]
                  for j in rng.choice(len(prompts), n_gen, replace=False)]
    picked += [real[int(i)] for i in rng.choice(len(real), n - n_gen, replace=False)]
    order = rng.permutation(len(picked))
    return CaptionDataset([picked[int(i)] for i in order], name)


def overlap_mix(source_set: CaptionDataset, real: CaptionDataset, generated: CaptionDataset, n: int,
                share: float, seed: int) -> CaptionDataset:
    """An innocent's n pairs: round(share * n) from the source's own training set (public
    data anyone may use), the rest real pairs; no generated ones."""
    k = min(int(round(share * n)), len(source_set))
    part = source_set.subset(np.random.default_rng(seed).choice(len(source_set), k, replace=False))
    return part.concat(mix(real, generated, n - k, 0.0, seed))
