"""Caption-image data: folders with a manifest (the built-in datasets are in attribcheck.lab)."""
from attribcheck.data.dataset import CaptionDataset, Sample

__all__ = ["CaptionDataset", "Sample"]
