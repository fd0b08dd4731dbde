"""The tiny world's recipe: one seeded configuration that `attribcheck world build` follows."""
from __future__ import annotations

from dataclasses import dataclass, field

from attribcheck.config import JsonConfig


@dataclass
class WorldConfig(JsonConfig):
    datasets: list = field(default_factory=lambda: ["emoji", "digits"])
    side: int = 16
    seed: int = 0
    # data splits, per dataset (disjoint)
    pretrain_size: int = 400  # the broad pool the base model is "pre-trained" on
    source_size: int = 60  # the source owner's fine-tuning set D_S
    domain_extra: int = 40  # other captions of the domain: an infringer's prompts mix both
    real_pool: int = 200  # real pairs suspects train on
    # Duplicates in D_S (the partial world; 0 = none, the emoji world): a share of D_S's images
    # appears k ~ U{lo..hi} times as near-duplicates (resampled and re-exposed by up to
    # `near_duplicate_jitter`), each copy captioned anew (`lab/datasets/webcaptions.py`).
    source_duplicate_share: float = 0.0
    source_duplicate_copies: list = field(default_factory=lambda: [1, 1])
    near_duplicate_jitter: float = 0.0
    source_duplicate_same_caption: float = 0.75  # share of copies that keep their original's caption
    # Link another built world's shared VAE and tokenizer (a path relative to this world's
    # folder, e.g. "../world") instead of training them: "" trains them here.
    shared_from: str = ""
    # training
    vae_steps: int = 1500
    twin_steps: int = 4000
    base_steps: int = 3000
    source_steps: int = 5000
    suspect_steps: int = 3000
    base_lr: float = 1e-3
    source_lr: float = 1e-3
    suspect_lr: float = 3e-3  # 1e-3 left suspects memorizing ~30% of their own set; 3e-3, 86%
    # suspects
    suspect_size: int = 80  # N, the suspect's fine-tuning set
    rhos: list = field(default_factory=lambda: [0.3, 0.5, 0.7, 1.0])
    suspect_seeds: list = field(default_factory=lambda: [0, 1])
    innocent_seeds: list = field(default_factory=lambda: [0, 1])
    overlap_share: float = 0.5  # the overlap innocent's share of real pairs taken from D_S
    # Share of D_S's images that are public (anyone may train on them; overlap innocents draw
    # from these only); the rest are the owner's own. A seeded draw of whole images, copies
    # included. 1.0: all of D_S is public (the emoji world). Key selection can drop keys near
    # a public image (the "public" key filter), since memorizing them is no evidence.
    public_share: float = 1.0
    generation_seeds: int = 2  # source images per domain prompt an infringer can draw from
    # How an infringer picks the prompts it sends the source: "distinct" (each domain prompt
    # at most once: the emoji world), or "domain" (as often as the domain's users write them:
    # a caption repeated in D_S comes up in proportion, each time with another seed)
    infringer_prompts: str = "distinct"
    # key selection and querying
    # reference models that filter each strategy's keys (`ref-innocent` and `ref-calibration`
    # calibrate p0 unless named here), and "public": drop keys near D_S's public images.
    # Strategy 1 as the paper has it (the base only); Strategy 2 also drops what the
    # source's twin reproduces (see README).
    key_filters: dict = field(default_factory=lambda: {
        "detection": ["base"], "generation": ["base", "ref-twin"], "random": ["base"]})
    # the datasets that get a suite, and the key set it audits with. Not digits: its images
    # are so alike at RMS 0.15 that innocents reproduce ~20% of any key set (README)
    suite_keys: dict = field(default_factory=lambda: {"emoji": "generation"})
    k: int = 30
    # "fixed": delta_0 below and Strategy 2's n/2 agreement (the emoji world's keys); "calibrated":
    # both from the reference models (keys/thresholds.py)
    thresholds: str = "fixed"
    delta_0: float = 0.15
    query_seeds: list = field(default_factory=lambda: [0, 1, 2, 3])
    sampler_steps: int = 50
    guidance_scale: float = 1.0  # > 1 needs models trained with caption dropout
    caption_dropout: float = 0.0  # every fine-tune's share of captions replaced by ""
    # every fine-tune also trains (and stores) its text encoder; else it is the base's, linked
    train_text_encoder: bool = False
    noise_offset: float = 0.0  # every fine-tune's offset noise (lab/train/finetune.py says why)

    # fields that choose keys, not what any model trains on
    SELECTION_ONLY = ("key_filters", "suite_keys", "k", "thresholds", "delta_0", "query_seeds")

    def training_identity(self) -> str:
        """The recipe's fields that decide what models train on (shadow caches key on this, so
        re-selecting keys never invalidates trained shadows)."""
        import json

        return json.dumps({k: v for k, v in self.to_dict().items() if k not in self.SELECTION_ONLY}, sort_keys=True)
