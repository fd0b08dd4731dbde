"""The two built-in real datasets the tiny world is built from (scikit-learn's digits and
OpenMoji's emoji, both installed from PyPI)."""
from attribcheck.data.dataset import CaptionDataset
from attribcheck.lab.datasets.digits import load_digits_dataset
from attribcheck.lab.datasets.emoji import load_emoji_dataset
from attribcheck.lab.datasets.webcaptions import load_emoji_web_dataset

# emoji-web: the same images with web-like, repeating captions (the partial-memorization world)
BUILTIN = {"digits": load_digits_dataset, "emoji": load_emoji_dataset, "emoji-web": load_emoji_web_dataset}


def load_builtin(name: str, side: int = 16, **kwargs) -> CaptionDataset:
    if name not in BUILTIN:
        raise ValueError(f"unknown dataset {name!r}; choose from {sorted(BUILTIN)}")
    return BUILTIN[name](side=side, **kwargs)


__all__ = ["BUILTIN", "load_builtin", "load_digits_dataset", "load_emoji_dataset", "load_emoji_web_dataset"]
