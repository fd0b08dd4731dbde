"""The statistical-level audit: each suspect's key-distance profile through the key set's
shadow-model discriminator (`attribcheck shadows fit`). Runs for every manifest whose key set
has a `discriminator.json`; it reuses the instance-level distances, so it costs no queries."""
from attribcheck.assertions import assert_expected


def test_statistical_verdict_matches_expectation(attrib_suspect, attrib_statistical_verdict, attrib_strict):
    # same rule as the instance level: fail on contradiction, warn on inconclusive
    assert_expected(attrib_statistical_verdict, attrib_suspect.expect, strict=attrib_strict)
