"""Web-like captions and duplicates for the partial-memorization world.

Real fine-tuning sets are scraped: an image's alt-text is free text written around what the
thing is called ("grinning face emoji", "cartoon grinning face icon on white background"),
the same words recur across different images ("smiling face" names a dozen faces), and
popular images appear several times, re-encoded and re-captioned. Those repeats are what
fine-tunes memorize (Carlini et al. 2023; Somepalli et al. 2023), so the partial world
builds them in, seeded:

- `emoji-web`: every OpenMoji image with one caption drawn from a family of CC3M-like
  templates around a form of its Unicode name (the full name, or a shortened one that
  other images share);
- `duplicate`: a share of a set's images repeated 2..n times as near-duplicates (slightly
  resampled, slightly re-exposed), each copy with its own caption draw (sometimes the
  same caption again).

Everything is a pure function of (seed, sample id, copy index): no global state.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata

import numpy as np

from attribcheck.data.dataset import CaptionDataset, Sample

MAX_CHARS = 96  # the tiny world's text encoder reads 96 characters (TinyConfig.max_length)

# (template, weight). "{a}" is "a" or "an" for the name that follows.
TEMPLATES: tuple[tuple[str, float], ...] = (
    ("{name}", 3.0),
    ("{name} emoji", 3.0),
    ("{name} icon", 2.0),
    ("{a} {name} icon on a white background", 1.5),
    ("cartoon {name}", 1.5),
    ("flat vector illustration of {a} {name}", 1.0),
    ("{name} sticker", 1.0),
    ("emoji of {a} {name}", 1.0),
    ("{name}, clip art", 1.0),
    ("cute {name} cartoon icon", 0.8),
    ("{a} {name} in flat design", 0.8),
    ("simple drawing of {a} {name}", 0.6),
    ("stock illustration: {name} isolated on white", 0.5),
)

# Unicode names carry artefacts of their history ("black" meant filled, "white" outlined);
# alt-text does not. Qualifiers after these words are what a short caption drops.
_DROP_PREFIXES = ("black ", "white ", "heavy ", "large ", "squared ", "negative squared ", "circled ")
_CLAUSE = re.compile(r" (with|and|on|for|in|of|at|pointing|facing) .*$")
SHORT_SHARE = 0.35  # share of captions that use the short form of the name


def _rng(*parts) -> np.random.Generator:
    """A generator seeded by a stable hash of its parts (Python's hash() is salted per run)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def short_name(name: str) -> str:
    """A shorter, more generic form of a Unicode name: its historic prefixes and its
    trailing qualifier dropped ("smiling face with open mouth and cold sweat" -> "smiling
    face"). Many images share a short name, as they share alt-text words on the web."""
    out = name.lower().strip()
    for p in _DROP_PREFIXES:
        if out.startswith(p) and len(out) > len(p) + 2:
            out = out[len(p):]
    shorter = _CLAUSE.sub("", out)
    return shorter if len(shorter) >= 3 else out


def article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def web_caption(name: str, sample_id: str, draw: int = 0, seed: int = 0) -> str:
    """One caption for the image called `name`: draw `draw` of a seeded distribution."""
    rng = _rng("caption", seed, sample_id, draw)
    form = short_name(name) if rng.random() < SHORT_SHARE else name.lower()
    weights = np.array([w for _, w in TEMPLATES])
    order = rng.choice(len(TEMPLATES), len(TEMPLATES), replace=False, p=weights / weights.sum())
    for j in order:  # the first drawn template that fits the text encoder's window
        text = TEMPLATES[int(j)][0].format(name=form, a=article(form))
        if len(text) <= MAX_CHARS:
            return text
    return form[:MAX_CHARS]


def emoji_name(sample_id: str) -> str:
    """The Unicode name behind an `emoji-XXXXX` id (copies `...~cN` share their original's)."""
    cp = int(sample_id.split("~")[0].split("-")[1], 16)
    return unicodedata.name(chr(cp)).lower()


def load_emoji_web_dataset(side: int = 16, seed: int = 0) -> CaptionDataset:
    """OpenMoji's images with web-like captions (draw 0 for every image)."""
    from attribcheck.lab.datasets.emoji import load_emoji_dataset

    base = load_emoji_dataset(side=side)
    return CaptionDataset([Sample(s.id, web_caption(s.caption, s.id, 0, seed), s.image) for s in base],
                          "emoji-web")


def near_duplicate(image: np.ndarray, sample_id: str, copy: int, jitter: float, seed: int = 0) -> np.ndarray:
    """A re-encoded copy: resampled (slightly blurred) and re-exposed by up to `jitter` per
    channel (copy 0, or jitter 0, is the image itself). A sub-pixel shift was tried and
    dropped: at 16 px it moves a copy ~0.08 RMS away, more than re-hosting does."""
    if copy == 0 or jitter <= 0:
        return image
    from attribcheck import images as _img

    rng = _rng("dup", seed, sample_id, copy)
    side = image.shape[0]
    # a re-hosted thumbnail: a third of an upscale-and-back round trip's blur
    small = (2 * image + _img.resize(_img.resize(image, side * 3), side)) / 3
    gain = 1 + rng.uniform(-jitter, jitter, size=3)  # per channel: a slight colour cast
    offset = rng.uniform(-jitter, jitter) * 0.5
    return np.clip(small * gain + offset, 0, 1).astype(np.float32)


def original_id(sample_id: str) -> str:
    """The id of the image a copy repeats (`duplicate` names copies "<id>~c<c>")."""
    return sample_id.split("~")[0]


def duplicate(data: CaptionDataset, share: float, copies: tuple[int, int], jitter: float, seed: int,
              same_caption: float = 0.3, name_of=emoji_name) -> tuple[CaptionDataset, dict[str, int]]:
    """Repeat round(share * len(data)) images, chosen by a seeded draw, 2..n times.

    copies = (lo, hi): each chosen image appears k ~ U{lo..hi} times in all. Copy c >= 1
    gets id "<id>~c<c>", a near-duplicate image, and with probability `same_caption` its
    original's caption, else its own caption draw c. Returns (dataset with every copy,
    {original id: times it appears}); the copies follow their original in order.
    """
    lo, hi = copies
    if not 1 <= lo <= hi:
        raise ValueError(f"copies must satisfy 1 <= lo <= hi, got {copies}")
    rng = _rng("duplicate", seed, len(data), share)
    n_dup = int(round(share * len(data)))
    chosen = set(int(i) for i in rng.choice(len(data), n_dup, replace=False)) if n_dup else set()
    counts, out = {}, []
    for i, s in enumerate(data):
        k = int(rng.integers(lo, hi + 1)) if i in chosen else 1
        counts[s.id] = k
        out.append(s)
        for c in range(1, k):
            crng = _rng("copy-caption", seed, s.id, c)
            caption = s.caption if crng.random() < same_caption else web_caption(name_of(s.id), s.id, c, seed)
            out.append(Sample(f"{s.id}~c{c}", caption, near_duplicate(s.image, s.id, c, jitter, seed)))
    return CaptionDataset(out, data.name), counts
