"""The key set: a portable, hash-checked artifact and the owner's secret.

Layout: `keyset.json` (captions, query protocol, metric, delta_0, per-key distances, hash)
and `images/<index>.png` (reference images). Images are quantised to 8 bits on creation, so
a saved key set measures exactly like the one in memory. A key set read from disk is
untrusted: `keyset.json` is validated field by field (`KeySetFile`), image paths stay inside
the folder, and the content hash covers the manifest and the pixels.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from attribcheck import images
from attribcheck.artifacts import Artifact
from attribcheck.errors import AttribcheckError, InputError, IntegrityError
from attribcheck.models.protocol import QueryProtocol

FORMAT_VERSION = 2  # 2: `protocol` without device or batch size (they never change an image)
FILENAME = "keyset.json"
# Fewer keys than this cannot carry a verdict: with K keys the smallest p-value is p0^K, and
# a handful of matches on a handful of keys is no evidence anyone should accuse on.
MIN_KEYS = 5
# why keys without a public check (KeySet.public_check) cannot accuse: said by `keys select`,
# `keys power`, the audit's withheld verdicts and the evidence page
NOT_PUBLIC_CHECKED = ("the keys were not checked against public training data, so they cannot support an "
                      "accusation: a model trained on the same public images reproduces them as the source does "
                      "(select them with --public FOLDER, a --twin reference, or --private to declare the source's "
                      "training data private)")
ROLES = ("selection", "calibration")


def quantise(image: np.ndarray) -> np.ndarray:
    return (np.round(np.clip(image, 0, 1) * 255) / 255).astype(np.float32)


# Keys are independent evidence (the binomial test counts them so): no two repeat a caption
# (after collapsing whitespace and case) and no two images lie within half of delta_0 of each
# other (delta_0 itself is where distinct pictures already meet at the innocent rate). Key
# images larger than this side are compared at it, through the metric's own `side`: K = 100
# keys at 512x512 are 4,950 pairs, seconds at this size, minutes at full size. For the RMS
# metrics a box-shrunk pair is no farther apart than at full size, so this refuses more, never less.
INDEPENDENCE_SIDE = 64


def caption_form(caption: str) -> str:
    """A caption as a query sees it: whitespace collapsed, case folded."""
    return " ".join(caption.split()).casefold()


def independence_metric(distance: dict, shape: tuple):
    """The key set's metric as the independence check applies it to keys of `shape`."""
    from dataclasses import replace

    from attribcheck.metrics.distance import get_distance

    metric = get_distance(distance)
    if max(shape[:2]) > INDEPENDENCE_SIDE and (metric.side is None or metric.side > INDEPENDENCE_SIDE):
        metric = replace(metric, side=INDEPENDENCE_SIDE)
    return metric


def dependence(later: "Key", earlier: "Key", metric, delta_0: float) -> str | None:
    """Why `later` is not independent of `earlier` (one caption, or one picture), or None.
    The metric reads `later` as an answer and `earlier` as the key, as an audit would."""
    if caption_form(later.caption) == caption_form(earlier.caption):
        return f"repeat one caption ({earlier.caption[:60]!r})"
    d = metric(later.image, earlier.image)
    if d < delta_0 / 2:
        return f"lie {d:.4f} apart, within half of delta_0 ({delta_0 / 2:.4f}): one picture counted twice"
    return None


@dataclass
class Key:
    id: str
    caption: str
    image: np.ndarray
    r_source: float
    r_references: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        self.image = quantise(self.image)

    @property
    def margin(self) -> float:
        return min(self.r_references.values(), default=1.0) - self.r_source


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


class KeyEntry(_Strict):
    id: str = Field(min_length=1, max_length=200)
    caption: str = Field(min_length=1)
    image: str = Field(pattern=r"^images/[0-9]{4,}\.png$")  # inside the folder, by construction
    r_source: float = Field(ge=0)
    r_references: dict[str, float] = {}


class KeySetFile(Artifact):
    """The schema of `keyset.json`. The stamp (format, tool_version) is not part of the
    content hash: the hash covers what the keys are, not who wrote them."""

    FORMAT = "attribcheck.keyset"
    FORMAT_VERSION = FORMAT_VERSION
    UPGRADE = "re-select the keys with this version of attribcheck"
    WHAT = FILENAME

    format_version: Literal[2]
    strategy: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    delta_0: float = Field(gt=0)
    distance: dict[str, Any]
    protocol: QueryProtocol
    query_seeds: list[int] = Field(min_length=1, max_length=64)
    source: str
    reference_roles: dict[str, Literal["selection", "calibration"]] = {}
    candidates: int = Field(ge=0)
    selection: dict[str, Any] = {}  # how the strategy chose (thresholds, per-filter counts)
    keys: list[KeyEntry] = Field(min_length=MIN_KEYS)
    content_hash: str = Field(pattern=r"^[0-9a-f]{64}$")


@dataclass
class KeySet:
    keys: list[Key]
    strategy: str
    delta_0: float
    distance: dict
    protocol: QueryProtocol
    query_seeds: list[int]
    source: str = "source"
    # reference name -> "selection" (filtered keys) or "calibration" (held out to estimate p0)
    reference_roles: dict[str, str] = field(default_factory=dict)
    candidates: int = 0  # how many candidates the strategy looked at
    selection: dict = field(default_factory=dict)  # how the strategy chose, as recorded data

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def captions(self) -> list[str]:
        return [k.caption for k in self.keys]

    @property
    def images(self) -> list[np.ndarray]:
        return [k.image for k in self.keys]

    @property
    def public_check(self) -> str | None:
        """How these keys were checked against what public data gives anyone, in words; None:
        they were not, and they cannot support an accusation (audit/auditor.py). A key the source
        reproduces because it memorized a public training image is reproduced as well by an
        innocent model trained on that image (bench instance: an innocent trained on half of the
        emoji world's public D_S matched 11 of 30 unchecked Strategy 1 keys). Read from the
        selection record, which the content hash covers; a value of the wrong type counts as
        absent, so a malformed record can only withhold an accusation, never allow one."""
        t = self.selection.get("thresholds") if isinstance(self.selection, dict) else None
        t = t if isinstance(t, dict) else {}
        n, twins = t.get("public_images"), t.get("filter_only")
        selected_by = {name for name, role in self.reference_roles.items() if role == "selection"}
        if t.get("data_private") is True:
            return "the owner declared the source's training data private (keys select --private)"
        if type(n) is int and n > 0:
            return f"keys within delta_0 of any of {n} public training images were dropped (keys select --public)"
        if (isinstance(twins, list) and twins and all(isinstance(x, str) for x in twins)
                and set(twins) <= selected_by):
            return (f"keys reproduced by {', '.join(sorted(twins))}, trained on the source's own training data, "
                    f"were dropped (keys select --twin)")
        return None

    @property
    def cannot_accuse(self) -> str | None:
        """Why these keys accuse no one (NOT_PUBLIC_CHECKED), or None when they may."""
        return None if self.public_check else NOT_PUBLIC_CHECKED

    def head(self, k: int) -> "KeySet":
        """The first k keys (keys are stored best margin first)."""
        return KeySet(self.keys[:k], self.strategy, self.delta_0, self.distance, self.protocol,
                      self.query_seeds, self.source, dict(self.reference_roles), self.candidates,
                      dict(self.selection))

    def manifest(self) -> dict:
        return {
            "format_version": FORMAT_VERSION, "strategy": self.strategy, "delta_0": self.delta_0,
            "distance": self.distance, "protocol": self.protocol.to_dict(), "query_seeds": list(self.query_seeds),
            "source": self.source, "reference_roles": self.reference_roles, "candidates": self.candidates,
            "selection": self.selection,
            "keys": [{"id": k.id, "caption": k.caption, "image": f"images/{i:04d}.png",
                      "r_source": k.r_source, "r_references": k.r_references}
                     for i, k in enumerate(self.keys)],
        }

    def content_hash(self) -> str:
        h = hashlib.sha256(json.dumps(self.manifest(), sort_keys=True).encode())
        for k in self.keys:
            h.update(np.round(k.image * 255).astype(np.uint8).tobytes())
        return h.hexdigest()

    def validate(self, where: str | Path = "key set", independence: bool = True) -> "KeySet":
        """The checks a key set passes at save and at load (beyond the file's schema).
        `independence=False`: all but the keys' independence (load checks it after the hash)."""
        if len(self.keys) < MIN_KEYS:
            raise InputError(f"{len(self.keys)} keys; a key set needs at least {MIN_KEYS} to support a "
                             f"verdict (select from more candidates, or relax the strategy's thresholds)",
                             where, "keys")
        from attribcheck.metrics.distance import get_distance

        try:
            metric = get_distance(self.distance)
        except AttribcheckError as e:  # already names its field: said of this key set
            field = e.field if (e.field or "").startswith("distance") else f"distance.{e.field}" if e.field else "distance"
            raise InputError(e.message, where, field) from None
        except (TypeError, ValueError) as e:
            raise InputError(str(e), where, "distance") from e
        if not 0 < self.delta_0 <= metric.upper:
            raise InputError(f"{self.delta_0} outside ({metric.lower}, {metric.upper}], the metric's range",
                             where, "delta_0")
        if len(set(self.query_seeds)) != len(self.query_seeds):
            raise InputError("repeated seeds", where, "query_seeds")
        ids = [k.id for k in self.keys]
        if len(set(ids)) != len(ids):
            raise InputError("repeated key ids", where, "keys")
        shapes = {k.image.shape for k in self.keys}
        if len(shapes) != 1:
            raise InputError(f"key images differ in shape: {sorted(shapes)}", where, "keys")
        if independence:
            self._independent(where)
        roles = set(self.reference_roles)
        for i, k in enumerate(self.keys):
            if set(k.r_references) != roles:
                raise InputError(f"references {sorted(k.r_references)} differ from reference_roles {sorted(roles)}",
                                 where, f"keys.{i}.r_references")
        return self

    def _independent(self, where) -> None:
        """Refuse two keys that are one piece of evidence (`dependence`), naming both."""
        forms: dict[str, str] = {}
        for k in self.keys:  # captions first: a dictionary, not K^2 comparisons
            first = forms.setdefault(caption_form(k.caption), k.id)
            if first != k.id:
                raise InputError(f"keys {first!r} and {k.id!r} repeat one caption ({k.caption[:60]!r}): the binomial "
                                 f"test counts keys as independent", where, "keys")
        metric = independence_metric(self.distance, self.keys[0].image.shape)
        small = [images.resize(k.image, INDEPENDENCE_SIDE) if max(k.image.shape[:2]) > INDEPENDENCE_SIDE else k.image
                 for k in self.keys]  # shrunk once: the metric then compares them at that side
        views = [Key(k.id, k.caption, x, k.r_source) for k, x in zip(self.keys, small)]
        for j, later in enumerate(views):
            for earlier in views[:j]:
                why = dependence(later, earlier, metric, self.delta_0)
                if why:
                    raise InputError(f"keys {earlier.id!r} and {later.id!r} {why}: the binomial test counts keys as "
                                     f"independent", where, "keys")

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        self.validate(folder / FILENAME)
        (folder / "images").mkdir(parents=True, exist_ok=True)
        manifest = self.manifest()
        manifest["content_hash"] = self.content_hash()
        for i, k in enumerate(self.keys):
            images.save(k.image, folder / f"images/{i:04d}.png")
        KeySetFile.model_validate(manifest).save(folder / FILENAME)
        return folder

    @classmethod
    def load(cls, folder: str | Path, verify: bool = True, independence: bool = True) -> "KeySet":
        """`independence=False` only for `attribcheck keys prune`, which repairs exactly that."""
        folder = Path(folder)
        path = folder / FILENAME
        m = KeySetFile.load(path, f"no {FILENAME}: not a key set folder")
        keys = []
        for i, k in enumerate(m.keys):
            try:
                image = images.load(folder / k.image)
            except (OSError, ValueError, AttribcheckError) as e:
                raise InputError(f"cannot read {k.image}: {e}", path, f"keys.{i}.image") from e
            keys.append(Key(k.id, k.caption, image, k.r_source, dict(k.r_references)))
        ks = cls(keys, m.strategy, m.delta_0, m.distance, m.protocol, m.query_seeds, m.source,
                 dict(m.reference_roles), m.candidates, m.selection).validate(path, independence=False)
        if verify and ks.content_hash() != m.content_hash:
            raise IntegrityError("does not match the keys and their images: the key set was altered",
                                 path, "content_hash")
        if independence:
            ks._independent(path)  # after the hash: an altered file is named as one first
        return ks

    def redacted(self) -> dict:
        """What a report may show without handing an infringer the keys."""
        m = self.manifest()
        m["keys"] = [{"r_source": k["r_source"]} for k in m["keys"]]
        m["content_hash"] = self.content_hash()
        return m
