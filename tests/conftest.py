"""Shared fixtures: compiled functions are built once per session (Numba compiles cost)."""

import os
import tempfile

import pytest
from hypothesis import HealthCheck, settings

# Generated modules and Numba's cache go to a private directory, not the user's cache.
os.environ.setdefault("SYMDIFF_CACHE_DIR", tempfile.mkdtemp(prefix="symdiff-tests-"))
# Tests check the compiled code, so by default a first call waits for it rather than
# running on the evaluator; tests/test_background.py turns the background tier on.
os.environ.setdefault("SYMDIFF_BACKGROUND", "0")

# Fuzzing depth: the default profile fits the CI budget; HYPOTHESIS_PROFILE=long runs
# about 30 times as many cases (tests/test_fuzz.py and every test without its own count).
settings.register_profile("default", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

import symdiff as sd  # noqa: E402

LECTURE = "((a+b)*c)**2"


@pytest.fixture(scope="session")
def lecture():
    """The lecture example compiled once."""
    return sd.compile(LECTURE)
