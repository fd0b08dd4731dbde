"""Shared pytest configuration for the library's tests and the audit suites."""
import os

from hypothesis import settings

# Model-backed property tests are slow per example: no per-example deadline, and a
# smaller budget in CI. `HYPOTHESIS_PROFILE=dev` for a deeper local search.
settings.register_profile("ci", deadline=None, max_examples=30)
settings.register_profile("dev", deadline=None, max_examples=200)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is fetched from a hub, ever
