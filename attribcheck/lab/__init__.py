"""The lab: what builds and measures the tiny world, never needed to audit a model.

The world recipe and builder, fine-tuning, shadow-model building, the benches, the
watermark baseline (Baseline 1) and the two built-in datasets live here. Their extra
dependencies come with `pip install "attribcheck[lab]"`; the audit itself (keys, suspects,
verdicts, the pytest plugin) never imports this package.
"""
