"""Baseline 1 measured: decode the watermark in what a suspect generates for the domain's prompts."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from attribcheck.lab.watermark.dct import DctWatermark
from attribcheck.lab.world.layout import rho_tag

QUERY_SEED = 0


def decoded_bits(mark: DctWatermark, folder: Path, prompts: list[str], sampler, store: Path) -> np.ndarray:
    """Bits right per prompt (one generation each), cached as JSON in `store`."""
    from attribcheck.models.diffusers_generator import DiffusersGenerator

    path = store / f"{folder.name}-watermark-bits.json"
    if path.exists():
        return np.asarray(json.loads(path.read_text())["bits"])
    gen = DiffusersGenerator.from_path(folder, sampler, folder.name)
    bits = mark.bit_accuracy(np.stack(gen.generate(prompts, [QUERY_SEED] * len(prompts))))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"bits": bits.tolist()}))
    return bits


def watermark_conf(builder, dataset: str, rhos, innocents: list[Path]) -> dict:
    """conf per rho (share of generations with >= match_bits right), the innocents' rate, and
    what the stamp costs and keeps (PSNR; bits right on clean stamped images)."""
    w = builder.world
    mark = DctWatermark(builder.watermark, side=w.cfg.side)
    _, splits = w.data(dataset)
    prompts = w.domain_prompts(splits)
    sampler = w.protocol()
    store = builder.watermark_root / dataset / "decoded"
    share = lambda bits: float(np.mean(bits >= mark.cfg.match_bits))  # noqa: E731
    conf = {rho_tag(r): share(decoded_bits(mark, builder.watermark_infringer(dataset, r), prompts, sampler, store))
            for r in rhos}
    innocent = {p.name: share(decoded_bits(mark, p, prompts, sampler, store)) for p in innocents}
    grid = w.source_generations(dataset, prompts)
    clean = grid.reshape(-1, *grid.shape[2:])
    stamped = mark.embed_many(clean)
    rms = float(np.sqrt(np.mean((stamped - clean) ** 2)))
    from diffusers import AutoencoderKL

    from attribcheck.lab.train.vae import round_trip

    through_vae = round_trip(AutoencoderKL.from_pretrained(str(w.layout.shared / "vae")), stamped)
    return {"conf": conf, "innocent_conf": innocent, "prompts": len(prompts),
            "stamp_psnr_db": float(20 * np.log10(1 / rms)), "clean_bits_min": int(mark.bit_accuracy(stamped).min()),
            "marked_after_vae": float(np.mean(mark.carries_mark(through_vae))),
            "match_bits": mark.cfg.match_bits, "bits": mark.cfg.bits}
