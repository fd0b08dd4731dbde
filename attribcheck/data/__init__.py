"""Caption-image data: folders with a manifest, and two built-in real datasets."""
from attribcheck.data.dataset import CaptionDataset, Sample
from attribcheck.data.digits import load_digits_dataset
from attribcheck.data.emoji import load_emoji_dataset

BUILTIN = {"digits": load_digits_dataset, "emoji": load_emoji_dataset}


def load_builtin(name: str, side: int = 16, **kwargs) -> CaptionDataset:
    if name not in BUILTIN:
        raise ValueError(f"unknown dataset {name!r}; choose from {sorted(BUILTIN)}")
    return BUILTIN[name](side=side, **kwargs)


__all__ = ["CaptionDataset", "Sample", "load_builtin", "load_digits_dataset", "load_emoji_dataset"]
