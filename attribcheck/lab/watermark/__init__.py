"""Baseline 1: an injection-based watermark (stamp the source's outputs, decode the suspect's)."""
