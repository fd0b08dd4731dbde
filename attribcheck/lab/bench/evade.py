"""`python -m attribcheck.bench evade`: verdicts against an infringer that changes its *model*
(issue 19): washing (further fine-tuning on real pairs of the domain, a curve over steps and
learning rates), weight round trips (int8, fp16, bf16), a LoRA fine-tune instead of a full one,
a student distilled from the infringer's generations, and a merge with an innocent model.
Innocents go through the same transformations. Every point is audited as a suite audits a
suspect (audit/run.py: instance verdict with its rate bound, departures, statistical verdict).

Models are seeded and cached outside git (attribcheck.cache.default_root()/evade/<recipe>/),
one folder per point with a `.done` marker and its audit row, so a killed run continues.
Points are built in the plan's order (cheap ones first, then the training ones by priority);
`--budget-steps` cuts the training points the machine cannot afford, and says so.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from attribcheck.lab.world.layout import infringer_name, innocent_name, is_done, mark_done

DATASET = "emoji-web"
WORLD = "fixtures/world-partial"
MANIFEST = "suites/emoji-web.toml"
INFRINGERS = (infringer_name(1.0, 0), infringer_name(0.5, 0))
INNOCENT = innocent_name(0)
PARTNER = innocent_name(1)  # the innocent model merges average with
CASTS = ("float16", "bfloat16")
MERGE_SHARES = (0.25, 0.5, 0.75)  # the innocent partner's share of the merged weights
WASH_STEPS = (100, 500, 2000)
LONG_WASH = (4000,)  # 1.6x the infringers' own training, on real pairs only
WASH_LR_FACTORS = (1.0, 0.1, 0.01)  # of the suspects' learning rate
WASH_PAIRS = 80  # real pairs of the domain, as many as a suspect trained on
LORA_RANK = 8
LORA_LR = 5e-3  # LoRA adapters train at a higher rate than full weights (2.5x the suspects')
# a stronger LoRA, after the first left its models not following their captions: twice the
# rank, twice the rate, and the text encoder's MLPs adapted too
LORA_STRONG = {"rank": 16, "lr": 1e-2, "text_mlp": True}
# every UNet layer adapted at rank 8 (train.UNET_ALL): it fits the rho 1.0 infringer's data no
# better than the first recipe (held-out-noise loss 0.117 against 0.115 at 2500 steps; the full
# fine-tune 0.082), and its answers still ignore their captions
LORA_ALL_STEPS = (2500,)
# The base ignores its captions (caption auc 0.51) and the infringers learn to follow them in
# their full fine-tune; an adapter must build that from nothing. A real LoRA starts from a public
# checkpoint that follows captions: here the owner's reference innocent (the base fully fine-tuned
# on 80 real pairs of the domain, caption auc 0.70, clean 0/39: the keys were filtered against
# it, as keys are against public models), with the first LoRA recipe.
LORA_ON = "ref-innocent"
# the recipe of every built point: a changed recipe builds into a new folder
RECIPE = {"version": 1, "wash_pairs": WASH_PAIRS, "lora_rank": LORA_RANK, "lora_lr": LORA_LR,
          "wash_seed": 900, "distill_seed": 950}


@dataclass
class Point:
    """One audited model: `subject` (a world model) put through `evasion` at `strength`."""
    subject: str
    expect: str
    evasion: str
    strength: dict
    folder: Path | None = None  # None: the world's own model, untouched
    steps: int = 0  # training steps its build costs (0: seconds)
    build: object = field(default=None, repr=False)  # build(folder) for one point; or a job shared by several
    job: str = ""  # points built by one run (a wash's checkpoints) share a job name

    @property
    def name(self) -> str:
        return f"{self.subject}/{self.evasion}" + "".join(f"-{k}{v:g}" if isinstance(v, float) else f"-{k}{v}"
                                                        for k, v in self.strength.items())


def expect_of(name: str) -> str:
    return "infringing" if name.startswith("infringer") else "innocent"


class Plan:
    """The world's parts the transformations need, and the points in build order."""

    def __init__(self, world: str | Path = WORLD, root: str | Path | None = None):
        from attribcheck.lab.shadows.build import fingerprint
        from attribcheck.lab.world.build import WorldBuilder
        from attribcheck.lab.world.config import WorldConfig
        from attribcheck.lab.world.layout import WorldLayout

        self.layout = WorldLayout(Path(world))
        self.builder = WorldBuilder(world, WorldConfig.load(self.layout.config))
        if root is None:
            from attribcheck.cache import default_root

            root = default_root()
        self.root = Path(root) / "evade" / fingerprint(self.builder.cfg.training_identity(), json.dumps(RECIPE, sort_keys=True))

    def model(self, name: str) -> Path:
        return self.layout.model(DATASET, name)

    def splits(self):
        if not hasattr(self, "_splits"):
            self._splits = self.builder.data(DATASET)[1]
        return self._splits

    def train_set(self, name: str):
        """The world's training set and seed for one of its models (suspect_plan rebuilds them exactly)."""
        b = self.builder
        splits = self.splits()
        b._grid = b.source_generations(DATASET, b.domain_prompts(splits))
        for n, data, seed in b.suspect_plan(splits):
            if n == name:
                stored = json.loads((self.model(name) / "train_set.json").read_text())["ids"]
                if stored != data.ids:
                    raise RuntimeError(f"{name}: the rebuilt training set is not the one it trained on")
                return data, seed
        raise KeyError(name)

    # --- the points ---------------------------------------------------------------------
    def weight_points(self, subjects) -> list[Point]:
        from attribcheck.lab.evade import weights as w

        pts = []
        for s in subjects:
            src = self.model(s)
            for dtype in CASTS:
                pts.append(Point(s, expect_of(s), "cast", {"dtype": dtype}, build=lambda out, src=src, d=dtype: w.transform(
                    src, out, lambda t, d=d: w.cast_round_trip(t, d), lambda t, d=d: w.cast_round_trip(t, d))))
            for per_channel in (True, False):
                pts.append(Point(s, expect_of(s), "int8", {"scale": "channel" if per_channel else "tensor"},
                                 build=lambda out, src=src, pc=per_channel: w.transform(
                                     src, out, lambda t, pc=pc: w.int8_round_trip(t, pc))))
            for share in MERGE_SHARES:
                partner = self.model(PARTNER)
                pts.append(Point(s, expect_of(s), "merge", {"partner": PARTNER, "share": share},
                                 build=lambda out, src=src, p=partner, sh=share: w.transform(
                                     src, out, lambda a, b, sh=sh: w.average(a, b, sh),
                                     lambda a, b, sh=sh: w.average(a, b, sh), partner=p)))
        return pts

    def wash_points(self, subject: str, factor: float, steps=WASH_STEPS, run: str = "") -> list[Point]:
        """One run from `subject` at factor x the suspects' learning rate, audited at each step
        count; `run` names a further run of its own (its checkpoints are saved every min(steps))."""
        from attribcheck.lab.evade.train import wash
        from attribcheck.lab.train.mix import mix

        c = self.builder.cfg
        lr = c.suspect_lr * factor
        seed = RECIPE["wash_seed"] + WASH_LR_FACTORS.index(factor)
        job = f"{subject}/wash-lr{lr:g}{run}"
        pts = [Point(subject, expect_of(subject), "wash", {"lr": lr, "steps": n}, steps=n, job=job) for n in steps]

        def build(outs: dict[int, Path]):
            real = self.splits()["real"]
            data = mix(real, real, WASH_PAIRS, 0.0, seed)  # WASH_PAIRS real pairs, seeded
            wash(self.model(subject), data, self.builder.finetune_config(max(outs), lr, seed), outs, mark_done)

        for p in pts:
            p.build = build
        pts[-1].steps = max(steps)  # the run's cost, counted once
        for p in pts[:-1]:
            p.steps = 0
        return pts

    def lora_point(self, like: str, rank: int = LORA_RANK, lr: float = LORA_LR, text_mlp: bool = False,
                   on: str = "base") -> Point:
        """The world model `on` (the base; or a fine-tune of it that follows captions) LoRA-fine-tuned
        on the training set of the world model `like`."""
        from attribcheck.lab.evade.train import lora

        c = self.builder.cfg

        def build(out):
            data, seed = self.train_set(like)
            lora(self.model(on), data, self.builder.finetune_config(c.suspect_steps, lr, seed),
                 {c.suspect_steps: out}, rank, text_mlp)

        strength = ({"on": on} if on != "base" else {}) | {"rank": rank, "lr": lr} | (
            {"text": "attn+mlp"} if text_mlp else {})
        return Point(like, expect_of(like), "lora", strength, steps=c.suspect_steps, build=build)

    def lora_all_points(self, like: str, rank: int = LORA_RANK, lr: float = LORA_LR,
                        steps=LORA_ALL_STEPS) -> list[Point]:
        """The base LoRA-fine-tuned with every UNet layer adapted (LoCon-style) on the training set
        of `like`: one run, audited at each step count."""
        from attribcheck.lab.evade.train import UNET_ALL, lora

        job = f"{like}/lora-all-rank{rank}-lr{lr:g}"
        pts = [Point(like, expect_of(like), "lora", {"rank": rank, "lr": lr, "layers": "all", "steps": n}, job=job)
               for n in steps]

        def build(outs: dict[int, Path]):
            data, seed = self.train_set(like)
            lora(self.model("base"), data, self.builder.finetune_config(max(outs), lr, seed), outs, rank,
                 done=mark_done, unet_targets=UNET_ALL)

        for p in pts:
            p.build = build
        pts[-1].steps = max(steps)  # the run's cost, counted once
        return pts

    def distill_point(self, teacher: str) -> Point:
        """The base fine-tuned (the suspects' recipe) on `teacher`'s generations for the domain's
        prompts, drawn as a rho = 1 infringer draws the source's."""
        import numpy as np

        from attribcheck.lab.evade.train import teacher_generations
        from attribcheck.lab.train.mix import mix
        from attribcheck.lab.world.build import train_one

        b, c = self.builder, self.builder.cfg

        def build(out):
            splits = self.splits()
            prompts = b.domain_prompts(splits)
            seeds = [50_000 + j for j in range(c.generation_seeds)]
            grid_file = out.parent / (out.name + ".generations.npz")
            if grid_file.exists():
                grid = np.load(grid_file)["images"].astype(np.float32) / 255
            else:
                grid = np.round(teacher_generations(self.model(teacher), prompts, seeds, b.protocol()) * 255)
                out.parent.mkdir(parents=True, exist_ok=True)
                np.savez_compressed(grid_file, images=grid.astype(np.uint8))
                grid = grid.astype(np.float32) / 255
            gens, weights = b.generated_pool(splits, grid)
            seed = RECIPE["distill_seed"]
            data = mix(splits["real"], gens, c.suspect_size, 1.0, seed, weights=weights)
            train_one(str(self.model("base")), data, str(out), b.finetune_config(c.suspect_steps, c.suspect_lr, seed).to_dict())

        return Point(teacher, expect_of(teacher), "distill", {"teacher_rho": 1.0 if "rho1.0" in teacher else 0.0},
                     steps=c.suspect_steps, build=build)

    def points(self) -> list[Point]:
        """Build order: untouched and weight-only points (seconds), then training by priority."""
        subjects = (*INFRINGERS, INNOCENT)
        pts = [Point(s, expect_of(s), "none", {}) for s in subjects]
        pts += self.weight_points(subjects)
        inf = INFRINGERS[0]
        pts += self.wash_points(inf, 1.0) + self.wash_points(inf, 0.1)
        pts += [self.lora_point(INFRINGERS[0]), self.lora_point(INFRINGERS[1]), self.distill_point(inf)]
        pts += self.wash_points(INNOCENT, 1.0, WASH_STEPS[:2]) + self.wash_points(INNOCENT, 0.1, WASH_STEPS[:2])
        pts += self.wash_points(inf, 0.01)  # the gentlest wash, then the innocents' LoRA and student
        pts += [self.lora_point(INNOCENT), self.distill_point(INNOCENT)]
        pts += [self.lora_point(s, **LORA_STRONG) for s in (*INFRINGERS, INNOCENT)]
        pts += self.lora_all_points(INFRINGERS[0])  # short of captions at rho 1.0: not run on the others
        pts += [self.lora_point(s, on=LORA_ON) for s in (*INFRINGERS, INNOCENT)]
        # where washing at the suspects' own rate ends: past the infringers' own 2,500 steps, a run
        # of its own (last, the costliest)
        pts += self.wash_points(inf, 1.0, LONG_WASH, run="-long")
        # the same on another such checkpoint, one the keys were not filtered against
        pts += [self.lora_point(s, on=PARTNER) for s in (INFRINGERS[1], INNOCENT)]
        for p in pts:
            if p.evasion != "none":
                p.folder = self.root / p.name.replace("/", "__")
        return pts


def build_point(p: Point, group: list[Point]) -> float:
    """Build `p` (and, for a wash, every checkpoint of its run) unless done; seconds spent."""
    if p.folder is None or is_done(p.folder):
        return 0.0
    t0 = time.perf_counter()
    p.folder.parent.mkdir(parents=True, exist_ok=True)
    if p.job:  # one training run saves every checkpoint of the job
        p.build({q.strength["steps"]: q.folder for q in group})
    else:
        p.build(p.folder)
        mark_done(p.folder)
    return time.perf_counter() - t0


# the verdict rules a stored audit row was read under: a row from older rules is read again
# (2: a clean verdict needs the statistical level on the innocent side, audit/run.py)
RULES = 2


def audit_point(p: Point, auditor, statistical, folder: Path) -> dict:
    """The suite's audit of one point's model (cached in its folder beside the model)."""
    from attribcheck.audit.run import audit_suspect
    from attribcheck.models.spec import SuspectSpec

    stored = p.folder / "audit.json" if p.folder is not None else None
    if stored is not None and stored.exists():
        row = json.loads(stored.read_text())
        if row.get("keyset") == auditor.keyset_hash and row.get("rules") == RULES:
            return row
    r = audit_suspect(auditor, SuspectSpec(p.name, folder, p.expect), statistical=statistical)
    if r.error is not None:
        raise RuntimeError(f"{p.name}: {r.error}")
    v, sv = r.verdict, r.statistical
    row = {"keyset": auditor.keyset_hash, "rules": RULES,
           "instance": {"verdict": v.verdict, "withheld": v.withheld, "conf": v.conf, "matches": v.matches, "k": v.k,
                        "p_value": v.p_value,
                        "p0": v.p0, "rate_bound": v.rate_bound, "r_min": v.r_min, "departure": v.departure,
                        "caption_info": r.caption_info.to_dict() if r.caption_info is not None else None},
           "statistical": None if sv is None else {"verdict": sv.verdict, "p_infringing": sv.p_infringing,
                                                   "departure": sv.departure}}
    if stored is not None:
        stored.write_text(json.dumps(row, indent=1))
    return row


def run(args) -> int:
    from attribcheck.audit.run import auditor_for, statistical_for
    from attribcheck.manifest import Manifest

    t0 = time.perf_counter()
    plan = Plan(args.world, args.cache_dir)
    pts = plan.points()
    if args.only:
        pts = [p for p in pts if p.evasion in args.only]
    budget = args.budget_steps
    spent, skipped, rows = 0, [], []
    manifest = Manifest.load(args.manifest)
    auditor = auditor_for(manifest)
    statistical = None if args.build_only else statistical_for(manifest, auditor.keyset)
    jobs: dict[str, list[Point]] = {}
    for p in pts:
        if p.job:
            jobs.setdefault(p.job, []).append(p)
    for p in pts:
        group = jobs.get(p.job, [p])
        cost = 0 if p.folder is None or is_done(p.folder) else max(q.steps for q in group)
        if budget is not None and spent + cost > budget:
            skipped.append(p.name)
            continue
        spent += cost
        secs = build_point(p, group)
        if secs:
            print(f"{p.name}: built in {secs:.0f} s", flush=True)
        if args.build_only:
            continue
        row = {"subject": p.subject, "expect": p.expect, "evasion": p.evasion, "strength": p.strength,
               **audit_point(p, auditor, statistical, p.folder or plan.model(p.subject))}
        row.pop("keyset")
        rows.append(row)
        print(line(row), flush=True)
        if args.json:  # after every point: a killed run leaves what it measured
            write(args.json, plan, auditor, rows, skipped, t0)
    if skipped:
        print(f"cut for the step budget ({budget}): {', '.join(skipped)}")
    if args.json and not args.build_only:
        write(args.json, plan, auditor, rows, skipped, t0)
        print(markdown(rows))
        print_table(summarise(rows))
    return 0


def line(row: dict) -> str:
    i, s = row["instance"], row["statistical"] or {}
    strength = ",".join(f"{k}={v}" for k, v in row["strength"].items())
    return (f"{row['subject']:22s} {row['evasion']:8s} {strength:28s} {i['matches']:>2d}/{i['k']} "
            f"{i['verdict']:12s} bound {i['rate_bound']:.2f} | P {s.get('p_infringing', float('nan')):.2f} "
            f"{s.get('verdict', '-'):12s}" + (" (departs)" if i["departure"] else "")
            + (" (clean withheld: the statistical level does not clear it)" if i.get("withheld") else ""))


def summarise(rows: list[dict]) -> dict:
    """What the targets ask: infringers cleared and innocents attributed at either level; per
    washing learning rate, the most steps after which each level still attributes."""
    out = {"infringers_clean": [], "innocents_attributed": [], "wash_limit": {}}
    for r in rows:
        name = f"{r['subject']}/{r['evasion']} {r['strength']}"
        for level in ("instance", "statistical"):
            v = (r[level] or {}).get("verdict")
            if r["expect"] == "infringing" and v == "clean":
                out["infringers_clean"].append(f"{name} ({level})")
            if r["expect"] == "innocent" and v == "attributed":
                out["innocents_attributed"].append(f"{name} ({level})")
        if r["evasion"] == "wash" and r["expect"] == "infringing":
            lim = out["wash_limit"].setdefault(f"{r['subject']} lr={r['strength']['lr']:g}",
                                               {"instance": 0, "statistical": 0, "steps": []})
            lim["steps"].append(r["strength"]["steps"])
            for level in ("instance", "statistical"):
                if (r[level] or {}).get("verdict") == "attributed":
                    lim[level] = max(lim[level], r["strength"]["steps"])
    base = {r["subject"]: r for r in rows if r["evasion"] == "none"}
    kept = out["verdict_kept"] = {}
    for r in rows:  # each transformed infringer beside its untouched self
        b = base.get(r["subject"])
        if b is None or r["evasion"] == "none" or r["expect"] != "infringing":
            continue
        kept[f"{r['subject']}/{r['evasion']} {r['strength']}"] = {
            level: (r[level] or {}).get("verdict") == (b[level] or {}).get("verdict")
            for level in ("instance", "statistical")}
    # the statistical level is at least as robust as the instance level on the washing curve
    out["statistical_at_least_instance"] = all(v["statistical"] >= v["instance"] for v in out["wash_limit"].values())
    return out


def markdown(rows: list[dict]) -> str:
    """The table for docs/results.md."""
    lines = ["| model | evasion | strength | m/K | instance | rate bound | P | statistical |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        i, s = r["instance"], r["statistical"] or {}
        strength = ", ".join(f"{k} {v}" for k, v in r["strength"].items()) or "-"
        why = " (answers ignore captions)" if i["departure"] and "captions" in i["departure"] else (
            " (departs)" if i["departure"] else " (clean withheld by the statistical level)" if i.get("withheld") else "")
        lines.append(f"| {r['subject']} | {r['evasion']} | {strength} | {i['matches']}/{i['k']} | {i['verdict']}{why} "
                     f"| {i['rate_bound']:.2f} | {s.get('p_infringing', float('nan')):.2f} | {s.get('verdict', '-')} |")
    return "\n".join(lines)


def write(path, plan: Plan, auditor, rows, skipped, t0) -> None:
    out = {"world": str(plan.layout.root), "dataset": DATASET, "manifest": MANIFEST, "k": len(auditor.keyset),
           "delta_0": auditor.delta_0, "p0": auditor.p0, "alpha": auditor.alpha, "recipe": RECIPE,
           "wash_lr_factors": WASH_LR_FACTORS, "rows": rows, "summary": summarise(rows),
           "cut": skipped, "wall_seconds": round(time.perf_counter() - t0, 1)}
    from attribcheck.outputs import write_atomic

    write_atomic(path, json.dumps(out, indent=1, allow_nan=False) + "\n", "bench JSON")


def print_table(summary: dict) -> None:
    print("infringers clean:", summary["infringers_clean"] or "none")
    print("innocents attributed:", summary["innocents_attributed"] or "none")
    for k, v in summary["wash_limit"].items():
        print(f"wash {k}: attributed up to {v['instance']} steps (instance), {v['statistical']} (statistical)"
              f" of {v['steps']}")
