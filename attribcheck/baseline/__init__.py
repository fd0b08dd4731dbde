"""Regression baselines for new checkpoints, in the conventions of pytest-regressions and
syrupy: `pytest suites/ --attrib-baseline-update` records, per manifest, each suspect's verdict,
conf and per-key distances (and the source self-check's) in a reviewable JSON file beside the
manifest (`baselines/<audit name>.json`); a later run compares against it and fails with a
diff table when a verdict changes or conf or a distance drifts past its tolerance.

snapshot.py: what a baseline records, from the audit report's entry; store.py: where it
lives and how it is read and written; compare.py: the differences and their table;
selfcheck.py: what the source's own drift means for the key set.
"""
