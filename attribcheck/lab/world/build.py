"""`attribcheck world build`: the seeded, resumable recipe for the tiny world.

Each model folder gets a `.done` marker when finished, so a killed build continues where it
stopped. Components every model shares (the VAE, the tokenizer, a dataset's text encoder)
are stored once and linked, which keeps the committed world inside its size budget.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from attribcheck.models.diffusers_generator import silence
from attribcheck.lab.world.config import WorldConfig
from attribcheck.lab.world.layout import (WorldLayout, infringer_name, innocent_name, is_done,
                                      mark_done)


def _log(msg: str) -> None:
    from rich.console import Console

    Console(stderr=True).log(msg)


def make_splits(cfg: WorldConfig, n: int, seed: int) -> dict[str, list[int]]:
    sizes = {"pretrain": cfg.pretrain_size, "source": cfg.source_size, "domain_extra": cfg.domain_extra,
             "real": cfg.real_pool}
    if sum(sizes.values()) > n:
        raise ValueError(f"the world's splits need {sum(sizes.values())} samples; the dataset has {n}")
    perm = np.random.default_rng(seed).permutation(n)
    out, start = {}, 0
    for name, size in sizes.items():
        out[name] = sorted(int(i) for i in perm[start:start + size])
        start += size
    return out


def link_shared(pipeline_dir: Path, component: str, target: Path) -> None:
    """Replace a saved component folder by a relative symlink to the shared copy."""
    dst = pipeline_dir / component
    if dst.is_symlink() or dst.exists():
        shutil.rmtree(dst) if dst.is_dir() and not dst.is_symlink() else dst.unlink()
    dst.symlink_to(os.path.relpath(target, pipeline_dir))


def _build_priority(name: str) -> tuple:
    """Build order: the p0 references, one seed of every suspect (highest rho first), the
    twin, further seeds. Each model's data and seed do not depend on the order."""
    seed = int(name.rsplit("-s", 1)[1]) if name.rsplit("-s", 1)[-1].isdigit() else 0
    rho = float(name.split("-rho")[1].split("-")[0]) if "-rho" in name else 0.0
    return seed, int(name == "ref-twin"), int(not name.startswith("ref-")), -rho


def train_one(base: str, train_set, out: str, finetune_cfg: dict) -> None:
    """Fine-tune `base` into `out` (top level: worker processes run it); not marked done."""
    from attribcheck.lab.train.finetune import FinetuneConfig, finetune

    silence()
    finetune(base, train_set, FinetuneConfig.from_dict(finetune_cfg), out)
    Path(out, "train_set.json").write_text(json.dumps({"ids": train_set.ids}, indent=0))


class WorldBuilder:
    def __init__(self, root: str | Path, cfg: WorldConfig | None = None, workers: int = 1, cache=None):
        self.layout = WorldLayout(Path(root))
        self.cfg = cfg or WorldConfig()
        self.seed_base = self.cfg.seed * 1000
        # runtime only, not in the recipe: models fine-tuned at once, and a GenerationCache
        # that key selection queries through (a re-selection with other filters is free)
        self.workers, self.cache = workers, cache

    # --- shared parts -------------------------------------------------------------------
    def data(self, dataset: str):
        from attribcheck.lab.datasets import load_builtin

        data = load_builtin(dataset, side=self.cfg.side)
        path = self.layout.splits(dataset)
        if not path.exists():  # stored as sample ids, so a reordered loader cannot shift them
            idx = make_splits(self.cfg, len(data), self.cfg.seed + sum(map(ord, dataset)))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({k: [data.ids[i] for i in v] for k, v in idx.items()}))
        position = {sid: i for i, sid in enumerate(data.ids)}
        splits = json.loads(path.read_text())
        out = {k: data.subset([position[sid] for sid in v]) for k, v in splits.items()}
        if self.cfg.source_duplicate_share > 0:
            out["source"] = self.duplicated_source(dataset, out["source"])
        out["public"] = self.public_part(dataset, out["source"])
        return data, out

    def public_part(self, dataset: str, d_s):
        """D_S's public pairs: a seeded draw of whole images (copies follow their original),
        listed in `public.json` beside the splits. All of D_S when public_share is 1."""
        from attribcheck.lab.datasets.webcaptions import original_id

        if self.cfg.public_share >= 1:
            return d_s
        originals = list(dict.fromkeys(original_id(i) for i in d_s.ids))
        rng = np.random.default_rng([self.cfg.seed, sum(map(ord, dataset)), 7])
        n = int(round(self.cfg.public_share * len(originals)))
        public = {originals[int(i)] for i in rng.choice(len(originals), n, replace=False)}
        path = self.layout.dataset(dataset) / "public.json"
        if not path.exists():
            path.write_text(json.dumps({"public_share": self.cfg.public_share, "images": sorted(public)}, indent=0))
        return d_s.subset([i for i, sid in enumerate(d_s.ids) if original_id(sid) in public])

    def duplicated_source(self, dataset: str, unique):
        """D_S with a share of its images repeated as near-duplicates, each copy captioned anew
        (seeded); written beside the splits as `source_set.json` for inspection."""
        from attribcheck.lab.datasets.webcaptions import duplicate

        c = self.cfg
        d_s, counts = duplicate(unique, c.source_duplicate_share, tuple(c.source_duplicate_copies),
                                c.near_duplicate_jitter, seed=c.seed + sum(map(ord, dataset)),
                                same_caption=c.source_duplicate_same_caption)
        path = self.layout.dataset(dataset) / "source_set.json"
        if not path.exists():
            path.write_text(json.dumps({"copies": counts, "pairs": [[s.id, s.caption] for s in d_s]}, indent=0))
        return d_s

    def shared(self):
        """The one tiny VAE (trained on every dataset's pre-training pool) and the tokenizer."""
        import torch

        from attribcheck.lab.tiny import TinyConfig, build_vae
        from attribcheck.lab.tokenizer import write_char_vocab
        from attribcheck.lab.train.vae import train_vae

        out = self.layout.shared
        if is_done(out):
            return
        if self.cfg.shared_from:  # another world's VAE and tokenizer, linked, not retrained
            other = (self.layout.root / self.cfg.shared_from / "shared").resolve()
            if not is_done(other):
                raise FileNotFoundError(f"shared_from: {other} is not a built world's shared folder; build it first")
            if not out.is_symlink():
                out.parent.mkdir(parents=True, exist_ok=True)
                out.symlink_to(os.path.relpath(other, self.layout.root))
            return
        tiny = TinyConfig(image_size=self.cfg.side, seed=self.cfg.seed)
        write_char_vocab(out / "tokenizer", tiny.max_length)
        pools = [self.data(d)[1]["pretrain"].images for d in self.cfg.datasets]
        torch.manual_seed(self.cfg.seed)
        vae, rms = train_vae(build_vae(tiny), np.concatenate(pools), steps=self.cfg.vae_steps,
                             seed=self.cfg.seed, progress=True)
        vae.save_pretrained(str(out / "vae"), safe_serialization=True)
        tiny.save(out / "tiny_config.json")
        (out / "vae_report.json").write_text(json.dumps({"reconstruction_rms": rms}))
        _log(f"shared VAE: reconstruction RMS {rms:.4f}")
        mark_done(out)

    def _link(self, folder: Path, dataset: str) -> None:
        link_shared(folder, "vae", self.layout.shared / "vae")
        link_shared(folder, "tokenizer", self.layout.shared / "tokenizer")
        if folder != self.layout.model(dataset, "base") and not self.cfg.train_text_encoder:
            link_shared(folder, "text_encoder", self.layout.model(dataset, "base") / "text_encoder")

    # --- models -------------------------------------------------------------------------
    def base(self, dataset: str, pool) -> Path:
        """'Pre-training': UNet and text encoder from scratch on the broad pool."""
        import torch
        from diffusers import AutoencoderKL, DDPMScheduler

        from attribcheck.lab.tiny import TinyConfig, build_pipeline
        from attribcheck.lab.train.finetune import FinetuneConfig, encode_captions, encode_images, train_unet

        out = self.layout.model(dataset, "base")
        if is_done(out):
            return out
        tiny = TinyConfig.load(self.layout.shared / "tiny_config.json")
        vae = AutoencoderKL.from_pretrained(str(self.layout.shared / "vae"))
        pipe = build_pipeline(tiny, str(out / "_tok"), vae=vae)
        cfg = FinetuneConfig(steps=self.cfg.base_steps, learning_rate=self.cfg.base_lr,
                             seed=self.seed_base + 1, resolution=self.cfg.side)  # no caption dropout: pre-training
        images = pool.images
        tok = pipe.tokenizer(pool.captions, padding="max_length", truncation=True,
                             max_length=pipe.tokenizer.model_max_length, return_tensors="pt").input_ids
        latents = encode_images(pipe.vae, images)
        null = encode_captions(pipe.tokenizer, pipe.text_encoder, [""])
        noise = DDPMScheduler.from_config(pipe.scheduler.config)
        train_unet(pipe.unet, noise, latents, None, null, cfg, progress=True,
                   text_encoder=pipe.text_encoder, token_ids=tok)
        pipe.unet.to(torch.float16)
        pipe.save_pretrained(str(out), safe_serialization=True)
        shutil.rmtree(out / "_tok", ignore_errors=True)
        cfg.save(out / "finetune_config.json")
        self._link(out, dataset)
        mark_done(out)
        return out

    def finetune_config(self, steps: int, lr: float, seed: int):
        from attribcheck.lab.train.finetune import FinetuneConfig

        return FinetuneConfig(steps=steps, learning_rate=lr, seed=seed, resolution=self.cfg.side,
                              caption_dropout=self.cfg.caption_dropout, train_text_encoder=self.cfg.train_text_encoder,
                              noise_offset=self.cfg.noise_offset)

    def finetune(self, dataset: str, name: str, train_set, steps: int, lr: float, seed: int) -> Path:
        out = self.layout.model(dataset, name)
        if is_done(out):
            return out
        _log(f"{dataset}/{name}: fine-tuning on {len(train_set)} pairs, {steps} steps")
        train_one(str(self.layout.model(dataset, "base")), train_set, str(out),
                  self.finetune_config(steps, lr, seed).to_dict())
        return self._finish(dataset, out)

    def _finish(self, dataset: str, out: Path) -> Path:
        self._link(out, dataset)
        mark_done(out)
        return out

    def generator(self, dataset: str, name: str):
        return self.layout.open(dataset, name, self.protocol(), self.cache)

    def protocol(self):
        from attribcheck.models.protocol import QueryProtocol

        return QueryProtocol(steps=self.cfg.sampler_steps, guidance_scale=self.cfg.guidance_scale)

    def source_generations(self, dataset: str, prompts: list[str]) -> np.ndarray:
        """What an infringer collects: the source's images for its domain's prompts."""
        from attribcheck.models.generator import generate_grid

        path = self.layout.dataset(dataset) / "source_generations.npz"
        if path.exists():
            return np.load(path)["images"].astype(np.float32) / 255
        seeds = [50_000 + j for j in range(self.cfg.generation_seeds)]
        grid = generate_grid(self.generator(dataset, "source"), prompts, seeds)
        np.savez_compressed(path, images=np.round(grid * 255).astype(np.uint8), prompts=np.array(prompts))
        return np.round(grid * 255) / 255

    # --- the world ----------------------------------------------------------------------
    def suspect_plan(self, splits) -> list[tuple[str, object, int]]:
        """(name, training set, seed) for every fine-tuned model besides the source."""
        from attribcheck.lab.train.mix import mix, overlap_mix

        c = self.cfg
        real, d_s, public = splits["real"], splits["source"], splits["public"]
        gens, weights = self.generated_pool(splits, self._grid)
        plan = []
        for rho in c.rhos:
            for s in c.suspect_seeds:
                seed = self.seed_base + 100 + int(rho * 10) * 10 + s
                plan.append((infringer_name(rho, s), mix(real, gens, c.suspect_size, rho, seed, weights=weights), seed))
        for s in c.innocent_seeds:
            seed = self.seed_base + 200 + s
            plan.append((innocent_name(s), mix(real, gens, c.suspect_size, 0.0, seed), seed))
        # An innocent whose real data overlaps the public part of the source's fine-tuning set.
        seed = self.seed_base + 300
        plan.append((innocent_name(0, overlap=True), overlap_mix(public, real, gens, c.suspect_size, c.overlap_share, seed), seed))
        # Reference models (the owner's): a twin of the source (D_S, another seed: what any
        # model trained on D_S reproduces is not evidence) filters keys; two innocents on
        # comparable real data are held out to calibrate p0.
        plan.append(("ref-innocent", mix(real, gens, c.suspect_size, 0.0, self.seed_base + 400), self.seed_base + 400))
        if any("ref-twin" in names for names in c.key_filters.values()):  # a source-length run: only when used
            plan.append(("ref-twin", d_s, self.seed_base + 401))
        plan.append(("ref-calibration", mix(real, gens, c.suspect_size, 0.0, self.seed_base + 402), self.seed_base + 402))
        return plan

    def generated_pool(self, splits, grid: np.ndarray):
        """The source's generations an infringer draws from, and each one's weight (None: the
        recipe's infringers send each prompt once)."""
        from collections import Counter

        from attribcheck.lab.train.mix import generated_dataset

        gens = generated_dataset(self.domain_prompts(splits), grid)
        if self.cfg.infringer_prompts == "distinct":
            return gens, None
        if self.cfg.infringer_prompts != "domain":
            raise ValueError(f"infringer_prompts: {self.cfg.infringer_prompts!r} is not 'distinct' or 'domain'")
        freq = Counter(list(splits["source"].captions) + list(splits["domain_extra"].captions))
        return gens, [float(freq[s.caption]) for s in gens]

    def domain_prompts(self, splits) -> list[str]:
        # attribute captions repeat (digits): a prompt is one candidate however often it occurs
        return list(dict.fromkeys(list(splits["source"].captions) + list(splits["domain_extra"].captions)))

    def keys(self, dataset: str, splits, strategies=("detection", "generation", "random")) -> None:
        from attribcheck.keys.keyset import MIN_KEYS
        from attribcheck.keys.select import SelectionContext, describe, get_selector
        from attribcheck.keys.thresholds import Thresholds
        from attribcheck.metrics.distance import get_distance

        c = self.cfg
        todo = [s for s in strategies
                if not (self.layout.keys(dataset, s) / "selection.json").exists()
                and not (self.layout.keys(dataset, s) / "keyset.json").exists()]
        if not todo:
            return
        used = {n for s in todo for n in c.key_filters[s] if n != "public"}
        models = {n: self.generator(dataset, n) for n in ("source", "base", "ref-innocent", "ref-calibration", *used)}
        pools = {"detection": splits["source"], "random": splits["source"],
                 "generation": self.domain_prompts(splits)}
        for strategy in todo:
            # Filter with the recipe's references for this strategy (the base: what pre-training
            # gives everyone; the twin: what training on D_S gives anyone); estimate p0 on the
            # two held-out innocents.
            filters = [n for n in c.key_filters[strategy] if n != "public"]
            ctx = SelectionContext(
                source=models["source"], references={n: models[n] for n in filters},
                # a model filters keys or estimates p0, never both (its misses would be selected for)
                calibration={n: models[n] for n in ("ref-innocent", "ref-calibration") if n not in filters},
                protocol=self.protocol(), distance=get_distance("rms"), query_seeds=c.query_seeds,
                thresholds=Thresholds(mode=c.thresholds, delta_0=c.delta_0),
                filter_only=tuple(n for n in ("ref-twin",) if n in filters),
                # "public": keys near D_S's public images are dropped (overlap innocents train on them)
                public=[s.image for s in splits["public"]] if "public" in c.key_filters[strategy] else ())
            # Strategy 1 and 2 keep every key that passes (best margin first): K = c.k by
            # default, and the K-ablation takes prefixes.
            k = c.k if strategy == "random" else 10_000
            ks = get_selector(strategy, k=k).select(ctx, pools[strategy])
            folder = self.layout.keys(dataset, strategy)
            folder.mkdir(parents=True, exist_ok=True)
            # what selection did, kept even when too few keys pass to make a key set
            (folder / "selection.json").write_text(json.dumps(ks.selection, indent=1, allow_nan=False) + "\n")
            _log(f"{dataset}: {strategy} keys: {len(ks)} of {ks.candidates} candidates; {describe(ks)}")
            if len(ks) >= MIN_KEYS:
                ks.save(folder)

    def build_dataset(self, dataset: str) -> None:
        _, splits = self.data(dataset)
        self.base(dataset, splits["pretrain"])
        c = self.cfg
        self.finetune(dataset, "source", splits["source"], c.source_steps, c.source_lr, self.seed_base + 2)
        self._grid = self.source_generations(dataset, self.domain_prompts(splits))
        # a build cut short still leaves a usable world (see _build_priority); resuming fills
        # in the rest
        plan = sorted(self.suspect_plan(splits), key=lambda p: _build_priority(p[0]))
        jobs = []
        for name, train_set, seed in plan:
            steps = c.twin_steps if name == "ref-twin" else c.suspect_steps
            lr = c.source_lr if name == "ref-twin" else c.suspect_lr
            jobs.append((name, train_set, steps, lr, seed))
        if self.workers > 1:
            self._finetune_many(dataset, jobs)
        for job in jobs:
            self.finetune(dataset, *job)
        self.keys(dataset, splits)

    def _finetune_many(self, dataset: str, jobs) -> None:
        """Train the planned models `workers` at once (spawned processes, one CPU share each)."""
        from concurrent.futures import as_completed

        from attribcheck.lab.shadows.executors import local_executor

        base = str(self.layout.model(dataset, "base"))
        todo = [j for j in jobs if not is_done(self.layout.model(dataset, j[0]))]
        with local_executor(self.workers) as pool:
            futures = {pool.submit(train_one, base, train_set, str(self.layout.model(dataset, name)),
                                   self.finetune_config(steps, lr, seed).to_dict()): name
                       for name, train_set, steps, lr, seed in todo}
            for f in as_completed(futures):
                f.result()  # re-raises a worker's error
                self._finish(dataset, self.layout.model(dataset, futures[f]))
                _log(f"{dataset}/{futures[f]}: done")

    def build(self, datasets: list[str] | None = None) -> None:
        silence()
        self.layout.root.mkdir(parents=True, exist_ok=True)
        if self.layout.config.exists():
            saved = WorldConfig.load(self.layout.config)
            if saved != self.cfg:
                raise ValueError(f"{self.layout.config} holds another recipe; build into a new folder")
        else:
            self.cfg.save(self.layout.config)
        self.shared()
        for d in datasets or self.cfg.datasets:
            self.build_dataset(d)
