"""Write the suites' audit manifests for a built world (one per dataset)."""
from __future__ import annotations

import os
from pathlib import Path

from attribcheck.lab.world.config import WorldConfig
from attribcheck.lab.world.layout import WorldLayout, infringer_name, innocent_name


def suspects(cfg: WorldConfig) -> list[tuple[str, str]]:
    """(model name, expectation) for every suspect of the world."""
    out = [(infringer_name(r, s), "infringing") for r in cfg.rhos for s in cfg.suspect_seeds]
    out += [(innocent_name(s), "innocent") for s in cfg.innocent_seeds]
    return out + [(innocent_name(0, overlap=True), "innocent")]


def write_manifest(layout: WorldLayout, cfg: WorldConfig, dataset: str, out: str | Path,
                   strategy: str = "generation", alpha: float = 0.01) -> Path:
    out = Path(out)
    rel = lambda p: Path(os.path.relpath(p, out.parent)).as_posix()  # noqa: E731
    lines = [
        f"# The tiny world's {dataset} audit: written by `attribcheck world build`.",
        "[audit]", f'name = "{dataset}"', f'source = "{rel(layout.model(dataset, "source"))}"',
        f'keys = "{rel(layout.keys(dataset, strategy))}"', f"alpha = {alpha}", "",
    ]
    for name, expect in suspects(cfg):
        lines += ["[[suspects]]", f'name = "{name}"', f'path = "{rel(layout.model(dataset, name))}"',
                  f'expect = "{expect}"', ""]
    # the held-out calibration references: the null through a suspect's declared postprocess
    from attribcheck.keys.keyset import KeySet

    roles = KeySet.load(layout.keys(dataset, strategy)).reference_roles
    for name in sorted(n for n, role in roles.items() if role == "calibration"):
        lines += ["[[innocents]]", f'name = "{name}"', f'path = "{rel(layout.model(dataset, name))}"', ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    return out
