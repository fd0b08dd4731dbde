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
        name: str = "mixed") -> CaptionDataset:
    """n pairs: round(rho * n) from `generated` (distinct prompts, as an infringer querying the
    source once per prompt would have), the rest from `real`; shuffled, seeded."""
    rng = np.random.default_rng(seed)
    n_gen = int(round(rho * n))
    by_prompt: dict[str, list[int]] = {}
    for i, s in enumerate(generated):
        by_prompt.setdefault(s.caption, []).append(i)
    prompts = sorted(by_prompt)
    if n_gen > len(prompts):
        raise ValueError(f"rho={rho} needs {n_gen} distinct generated prompts; {len(prompts)} available")
    if n - n_gen > len(real):
        raise ValueError(f"needs {n - n_gen} real pairs; {len(real)} available")
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
