"""Regression baselines, one test per manifest: `pytest suites/ --attrib-baseline-update`
records every suspect's verdict, conf and per-key distances (and the source self-check's)
in `suites/baselines/<audit name>.json`; later runs compare against it and fail with a diff
table (suspect, key, old, new) when a verdict changes or conf or a distance drifts past its
tolerance (--attrib-baseline-tol-distance 0.02, --attrib-baseline-tol-conf 0.1). For a new
checkpoint of your own, the source's block says which keys it no longer reproduces and
when to re-select the key set (--attrib-reselect-below 0.8).

One test per manifest, not a check inside each suspect's test: a baseline is one reviewed
file per manifest, a drift is read as one table, and a suspect's own test keeps answering
one question (does its verdict contradict the expectation?).
"""


def test_matches_baseline(attrib_baseline):
    attrib_baseline()
