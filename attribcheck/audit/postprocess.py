"""What a suspect's service does to its images before they reach the auditor, declared.

    [[suspects]]
    name = "vendor-api"
    kind = "folder"
    path = "../collected/vendor-api"
    expect = "innocent"
    postprocess = ["scale:0.5", "scale:2", "jpeg:75"]   # in the order the service applies them

Steps (each `name:number`):
- `jpeg:Q`: JPEG at quality Q (1-100);
- `scale:F`: resized by F (0.1-8: bilinear up, box down);
- `crop:S`: S/2 cut off every border (0 < S <= 0.5), scaled back to the size it had;
- `blur:R`: Gaussian blur of radius R pixels (0 < R <= 10).

The audit sees the keys through the same steps, and measures the null through them: the
innocent models' answers, passed through the steps, against the keys passed through them.
A blur or a round trip through a smaller size pulls every answer toward the average picture,
innocents' included, so a null measured on untouched answers would accuse a blurred innocent;
a crop moves every pixel, so an untouched key would miss a cropped infringer.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass

import numpy as np

from attribcheck import images

# step name -> (lowest, highest, whether the lowest is allowed)
STEPS = {"jpeg": (1, 100, True), "scale": (0.1, 8.0, True), "crop": (0.0, 0.5, False), "blur": (0.0, 10.0, False)}
_STEP = re.compile(r"^(?P<name>[a-z]+):(?P<value>[0-9]+(\.[0-9]+)?)$")


def parse_step(text: str) -> tuple[str, float]:
    """'jpeg:75' -> ('jpeg', 75.0), or ValueError saying what is wrong."""
    m = _STEP.match(text) if isinstance(text, str) else None
    if m is None or m["name"] not in STEPS:
        raise ValueError(f"{text!r} is not a step; steps are {', '.join(f'{s}:<number>' for s in STEPS)}")
    lo, hi, closed = STEPS[m["name"]]
    value = float(m["value"])
    if not (lo <= value <= hi if closed else lo < value <= hi):
        raise ValueError(f"{text!r}: {m['name']} takes {'[' if closed else '('}{lo:g}, {hi:g}]")
    if m["name"] == "jpeg" and value != int(value):
        raise ValueError(f"{text!r}: JPEG quality is a whole number")
    return m["name"], value


def _jpeg(x: np.ndarray, quality: float) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    images.to_pil(x).save(buf, format="JPEG", quality=int(quality))
    return images.to_array(Image.open(io.BytesIO(buf.getvalue())))


def _scale(x: np.ndarray, factor: float) -> np.ndarray:
    h, w = x.shape[:2]
    return images.resize_to(x, max(1, round(h * factor)), max(1, round(w * factor)))


def _crop(x: np.ndarray, share: float) -> np.ndarray:
    h, w = x.shape[:2]
    dh, dw = round(h * share / 2), round(w * share / 2)
    return images.resize_to(x[dh:h - dh, dw:w - dw], h, w)


def _blur(x: np.ndarray, radius: float) -> np.ndarray:
    from PIL import ImageFilter

    return images.to_array(images.to_pil(x).filter(ImageFilter.GaussianBlur(radius)))


_APPLY = {"jpeg": _jpeg, "scale": _scale, "crop": _crop, "blur": _blur}


@dataclass(frozen=True)
class Postprocess:
    """An ordered list of steps, applied to HxWx3 images in [0, 1]. Empty: the identity."""

    steps: tuple[tuple[str, float], ...] = ()

    @classmethod
    def parse(cls, texts) -> "Postprocess":
        steps = tuple(parse_step(t) for t in texts)
        # the scales together stay within one step's range: ["scale:8"] * 3 would ask for an image
        # 512 times the key's side (memory, not a verdict)
        lo, hi, _ = STEPS["scale"]
        total = float(np.prod([v for n, v in steps if n == "scale"]))
        if not lo <= total <= hi:
            raise ValueError(f"the scale steps together resize by {total:g}, outside [{lo:g}, {hi:g}]")
        return cls(steps)

    def __bool__(self) -> bool:
        return bool(self.steps)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        x = np.asarray(image, dtype=np.float32)[..., :3]
        for name, value in self.steps:
            x = _APPLY[name](x, value)
        return x

    def to_list(self) -> list[str]:
        return [f"{n}:{v:g}" for n, v in self.steps]
