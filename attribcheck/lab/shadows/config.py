"""How many shadows, on how much data, trained how (defaults follow the world's suspects)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from attribcheck.config import JsonConfig


@dataclass
class ShadowConfig(JsonConfig):
    # The paper trains M = 10 shadows per class on N = 500 pairs; the tiny worlds take the
    # paper's M on the suspects' N (a tiny fine-tune costs 3-10 CPU minutes; `--workers`).
    per_class: int = 10
    size: int | None = None  # N; None: the world's suspect_size
    # infringing shadows cycle through these generation rates; innocent shadows use 0
    rhos: list = field(default_factory=lambda: [0.3, 0.5, 0.7, 1.0])
    # Innocent shadows whose real pairs include part of D_S (the world's overlap_share): an
    # owner whose training data is public must teach the discriminator that reproducing
    # D_S images is not, by itself, evidence of training on its outputs.
    overlap_innocents: int = 2
    steps: int | None = None  # None: the world's suspect_steps
    learning_rate: float | None = None  # None: the world's suspect_lr
    seed: int = 7000  # apart from every seed the world uses

    def plan(self) -> list[tuple[str, float, int]]:
        """(name, rho, seed offset) per shadow, infringing and innocent alternating (a build cut
        short leaves balanced classes), overlap innocents last. Offsets come in blocks of four
        per class, so raising per_class keeps every shadow already built."""
        inf = [(f"shadow-infringing-{i}", float(self.rhos[i % len(self.rhos)]), 8 * (i // 4) + i % 4)
               for i in range(self.per_class)]
        inn = [(f"shadow-innocent-{i}", 0.0, 8 * (i // 4) + 4 + i % 4) for i in range(self.per_class)]
        pairs = [shadow for pair in zip(inf, inn) for shadow in pair]
        return pairs + [(f"shadow-innocent-overlap-{i}", 0.0, 1000 + i) for i in range(self.overlap_innocents)]

    def identity(self) -> str:
        """What the shadows' training depends on (the counts only add more of them)."""
        counts = ("per_class", "overlap_innocents")
        return json.dumps({k: v for k, v in self.to_dict().items() if k not in counts}, sort_keys=True)
