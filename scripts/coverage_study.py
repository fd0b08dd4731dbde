"""The rho 0.3 coverage study on the partial world (README: "Against the paper's claims").

Do infringers at rho = 0.3 inherit more keys when they hold more of the source's images? Two
infringing shadows at rho 0.3 on N = 240 pairs (72 of them the source's generations, three
times the world's suspects), trained at the same exposure per pair (7,500 steps: 500 epochs,
as the suspects' 2,500 steps over 80 pairs), evaluated beside the world's two rho 0.3
infringers: conf and verdict at K = 30 per strategy, with p0 bounded as `bench instance
--shadows` bounds it, and how many key captions each one's generated pairs cover.

    OMP_NUM_THREADS=1 python scripts/coverage_study.py train      # ~17 min, two models at once
    python scripts/coverage_study.py evaluate                     # needs `shadows build` (M = 10)

The models live in the shadow cache (outside git), under their own recipe's fingerprint.
"""
import json
import sys
from pathlib import Path

from attribcheck.lab.shadows.build import ShadowBuilder
from attribcheck.lab.shadows.config import ShadowConfig

W = Path("fixtures/world-partial")
D = W / "emoji-web"
STUDY = ShadowConfig(per_class=2, rhos=[0.3], size=240, steps=7500, overlap_innocents=0)


def train() -> None:
    from attribcheck.lab.shadows.executors import local_executor

    b = ShadowBuilder(W, cfg=STUDY)
    jobs = [j for j in b.shadow_jobs("emoji-web") if "infringing" in j[1].name]  # the innocents are not needed
    b.root.mkdir(parents=True, exist_ok=True)
    STUDY.save(b.root / "shadow_config.json")
    with local_executor(2) as pool:
        b._train(jobs, pool, "2 at once")


def evaluate() -> None:
    from attribcheck.audit.auditor import Auditor
    from attribcheck.cache import GenerationCache
    from attribcheck.keys.keyset import KeySet
    from attribcheck.lab.bench.instance import shadow_innocents
    from attribcheck.lab.world.build import WorldBuilder
    from attribcheck.lab.world.config import WorldConfig
    from attribcheck.manifest import SuspectSpec, open_generator

    world = WorldBuilder(W, WorldConfig.load(W / "world.json"))
    prompts = world.domain_prompts(world.data("emoji-web")[1])
    shadows = ShadowBuilder(W).shadows("emoji-web")  # the M = 10 build: its innocents bound p0
    study = ShadowBuilder(W, cfg=STUDY)
    models = {n: D / "models" / n for n in ("infringer-rho0.3-s0", "infringer-rho0.3-s1")}
    models.update({f"N240-rho0.3-{i}": study.folder("emoji-web", f"shadow-infringing-{i}") for i in (0, 1)})
    cache = GenerationCache()
    for s in ("detection", "generation", "random"):
        ks = KeySet.load(D / "keys" / s).head(30)
        a = Auditor(ks, innocents=shadow_innocents(shadows, ks))
        for name, folder in models.items():
            ids = json.loads((folder / "train_set.json").read_text())["ids"]
            seen = {prompts[int(i.split("-")[1])] for i in ids if i.startswith("gen-")}
            v = a.audit(open_generator(SuspectSpec(name, folder, "infringing"), ks.protocol, cache=cache), name)
            print(f"{s} {name}: N={len(ids)}, {sum(i.startswith('gen-') for i in ids)} generated, key captions "
                  f"covered {sum(c in seen for c in ks.captions)}/{len(ks)}, conf {v.conf:.3f} {v.verdict} "
                  f"(p = {v.p_value:.2g}, p0 = {a.p0:.3f})", flush=True)


if __name__ == "__main__":
    {"train": train, "evaluate": evaluate}[sys.argv[1]]()
